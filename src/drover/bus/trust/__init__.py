"""Who may do what on the bus (see docs/security.md).

NATS runs in operator mode: drover's authority (an operator and two accounts, their keys kept by
the server) mints a JWT for each identity — every agent, the server — whose permissions name the
subjects that identity may use and nothing else. nats-server checks them on every connect,
publish and subscribe by itself, so agents reconnect while the drover server is down.
Actions are signed by the server's own key and checked by the agent before it runs them.
"""
