"""The server side of the agent uplink (protocol/uplink.py): enrolment codes, enrolment, the WebSocket."""
