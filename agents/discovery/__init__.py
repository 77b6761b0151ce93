"""Finding the site's cameras: WS-Discovery probes, ONVIF interrogation, and the scanner that combines them."""
