"""The systemd provider: services that are systemd units, driven over the manager's D-Bus API.

    mapping.py   pure: a unit's properties → drover's ServiceStatus and a message
    manager.py   a thin typed adapter over dbus-fast for org.freedesktop.systemd1
    provider.py  SystemdProvider, the Provider contract on top of the manager
    errors.py    SystemdError, the one error the adapter raises

drover never parses `systemctl` output and never stops a unit it merely stops managing.
"""
