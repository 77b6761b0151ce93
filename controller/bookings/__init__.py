"""Rooms and bookings: models, recurrence expansion, conflict checks, room policies, availability, service layer."""
