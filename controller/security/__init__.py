"""Authentication and protection: passwords, sessions, CSRF, rate limits, and the per-route access policy."""
