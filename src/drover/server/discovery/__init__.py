"""Discovery: sorting each host's systemd units into applications (see matching.py)."""
