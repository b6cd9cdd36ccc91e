"""Real-time survey and live admin dashboard (issue 5)."""
