"""What text the service accepts: valid Unicode everywhere, and no control characters in a line of text.

Pure: no AWS, no Chalice. JSON escapes can encode what UTF-8 cannot (a lone surrogate such as "\\ud800"),
so strings are checked after parsing.
"""

from __future__ import annotations

import re

# Lone surrogates, and the 66 noncharacters (U+FDD0..U+FDEF and the last two code points of every plane).
_INVALID_UNICODE = re.compile(
    "[\ud800-\udfff\ufdd0-\ufdef"
    + "".join(chr(plane + 0xFFFE) + chr(plane + 0xFFFF) for plane in range(0, 0x110000, 0x10000))
    + "]"
)
# Unicode category Cc: C0 controls, DEL and C1 controls.
_CONTROL_IN_LINE = re.compile("[\x00-\x1f\x7f-\x9f]")
# Multi-line text may hold tabs and line breaks (\n or \r\n), nothing else of Cc.
_CONTROL_IN_LINES = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]|\r(?!\n)")


def invalid_unicode(text: str) -> bool:
    return _INVALID_UNICODE.search(text) is not None


def control_character(text: str, *, multiline: bool = False) -> bool:
    """Whether `text` holds a control character that its kind of field does not allow."""
    return (_CONTROL_IN_LINES if multiline else _CONTROL_IN_LINE).search(text) is not None
