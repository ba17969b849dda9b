"""An outpost: a remote site's leaf node of the bus, which the agents there connect to."""
