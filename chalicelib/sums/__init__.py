"""Last-hour sums of posted values (issue 4, seed 003)."""
