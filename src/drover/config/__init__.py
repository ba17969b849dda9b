"""The desired state as people write it: YAML files in a Git repository (or a plain folder)."""
