"""Pure domain types: no I/O, and nothing else of drover imported here."""
