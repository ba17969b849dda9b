"""drover — application management for fleets of Linux servers, on NATS.

The layers, each importing only those below it (tests/test_layers.py checks this):

    cli      commands for people and scripts; `drover dev` composes everything in one process
    server   fleet view, config sync, orchestration, REST API      ─┐ never import
    agent    providers, executor + ledger, reporter, desired state  ─┘ each other
    bus      NATS: every subject and bucket name, every wire message, connection, embedded server
    store    the system of record (SQL): actions and per-host results
    config   YAML schema, loader with source locations, Git/folder source
    ops      logging, clock, resilient loops, build info (used by every layer above model)
    model    pure domain: names, statuses, drift, actions; no I/O, imports nothing of drover
"""

__version__ = "0.1.0"
