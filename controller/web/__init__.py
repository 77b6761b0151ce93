"""Server-rendered pages and the JSON API for technicians."""
