"""Simulated ONVIF cameras for the demo and the tests: WS-Discovery, SOAP device/media services, RTSP, snapshot.

Each simulated camera is a real network peer bound to its own IP address. No product code imports this package.
"""
