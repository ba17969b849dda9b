"""The `drover` command: for people and scripts. Entry point: drover.cli.main:run."""
