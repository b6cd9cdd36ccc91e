"""A range a series cannot answer (pure): what the metric and hit series refuse with 400 `invalid_range`."""

from __future__ import annotations


class RangeRefused(ValueError):
    """A series range that cannot be answered, naming the query parameter at fault."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
