"""Real-time survey and live admin dashboard."""
