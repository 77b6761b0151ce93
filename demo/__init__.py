"""The demo: a controller, one agent and simulated cameras on loopback, started as separate processes.

It talks to each part only through its command line and its network endpoints, as an operator would.
"""
