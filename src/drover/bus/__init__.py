"""NATS: every name on the bus (subjects), every message (messages), the connection and the
embedded nats-server. The server and the agent share only this and `model`."""
