"""Join links (signed, expiring tokens per room or user and role) and iCalendar feeds and invitations.

`joinlinks` issues and verifies the tokens; `ics` turns stored bookings into RFC 5545 calendars. The routes are
in controller.web.calendar_routes; the decisions are in controller/README.md ("Calendars and join links").
"""
