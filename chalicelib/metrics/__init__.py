"""Last-hour sums of posted values."""
