"""Benchmarks behind `make bench`: real processes on this machine, figures measured, never
estimated. Not part of `make test`. Each module runs as `python -m bench.<name>`."""
