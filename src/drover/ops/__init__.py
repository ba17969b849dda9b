"""Cross-cutting operations support: logging, clock, resilient loops, counters, build info."""
