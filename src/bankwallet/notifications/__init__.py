"""Notifications: the in-app inbox, and messages out by e-mail and SMS (one-time codes)."""
