"""The orchestra's nodes: thin adapters that read state, call the core and return an update."""
