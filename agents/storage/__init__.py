"""Retention and disk: recordings deleted by age per camera and to keep a free-space floor, holds respected.

`config.RetentionConfig` (the `[retention]` table of the agent's configuration), `disk` (the free-space source,
injectable), `retention.Retention` (the periodic loop and the recorder's `before_segment` / `on_write_error`
hooks), `holds` (what a technician's hold request must look like) and `routes` (POST/DELETE
/api/cameras/{camera}/holds on the agent's local API, behind the recordings API's bearer token).
"""
