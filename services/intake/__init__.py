"""Incident intake: the HTTP API operators post incidents, notices and subjects to."""
