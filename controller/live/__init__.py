"""Parent live view: who may watch which camera, when, and the audit of every view (issue #6)."""
