"""The server: fleet view, config sync, desired state, action orchestration, REST API.
It imports nothing of the agent."""
