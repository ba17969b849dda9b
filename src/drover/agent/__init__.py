"""The agent: one per host. Discovers and runs services (providers), reports their state
(reporter), applies the desired state (desired), and carries out actions exactly once
(executor + ledger). It imports nothing of the server."""
