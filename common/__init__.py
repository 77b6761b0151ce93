"""Small utilities shared by every part (config loading, backoff, clock, secret redaction).

Nothing here knows about a particular part: the controller, the agent and the simulator each import it,
none of them imports another's internals.
"""
