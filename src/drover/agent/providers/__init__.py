"""Providers: the ways a service can exist on a host. Registered explicitly in agent/app.py."""
