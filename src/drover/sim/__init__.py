"""Simulated hosts (`drover sim`): the real agent on in-memory providers, many per process, to
load a server and its bus the way a large fleet would."""
