"""The simulated camera's ONVIF services: SOAP 1.2 envelopes, WS-Security, device and media services, quirks."""
