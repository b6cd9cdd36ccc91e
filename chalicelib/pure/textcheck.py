"""What text the service accepts: valid Unicode everywhere, and no control characters in a line of text.

Pure: no AWS, no Chalice. JSON escapes can encode what UTF-8 cannot (a lone surrogate such as "\\ud800"),
so strings are checked after parsing.
"""

from __future__ import annotations

import re

# Lone surrogates: not Unicode scalar values, so no UTF-8 (nor DynamoDB) can hold them. Noncharacters
# (U+FFFF and kin) are scalar values that Unicode allows in interchange (Corrigendum #9), so they pass.
_INVALID_UNICODE = re.compile("[\ud800-\udfff]")
# Unicode category Cc: C0 controls, DEL and C1 controls.
_CONTROL_IN_LINE = re.compile("[\x00-\x1f\x7f-\x9f]")
# The same rules as JSON Schema patterns (escapes, not the characters, so the document stays readable).
_CC = r"\u0000-\u001f\u007f-\u009f"
_CC_IN_LINES = r"\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f\r"  # and \r unless before \n, below
ONE_LINE_PATTERN = f"^[^{_CC}]*$"


def _class(characters: list[str]) -> str:
    """A regex character class body naming exactly these characters, as \\uXXXX escapes and ranges."""
    codes = sorted(ord(c) for c in characters)
    runs: list[list[int]] = []
    for code in codes:
        if runs and code == runs[-1][1] + 1:
            runs[-1][1] = code
        else:
            runs.append([code, code])
    return "".join(f"\\u{a:04x}" if a == b else f"\\u{a:04x}-\\u{b:04x}" for a, b in runs)


# What str.strip() trims, as a character class's body: the text fields that trim (the survey's) check what is left.
TRIMMED = _class([chr(code) for code in range(0x10000) if chr(code).isspace()])
# A trimmed one-line field: whatever surrounds it, no control character within.
TRIMMED_LINE_PATTERN = f"^[{TRIMMED}]*[^{_CC}]*[{TRIMMED}]*$"
# A trimmed multi-line field: within, tab and line breaks (\n, \r\n) only.
TRIMMED_LINES_PATTERN = f"^[{TRIMMED}]*(?:[^{_CC_IN_LINES}]|\\r\\n)*[{TRIMMED}]*$"
# Multi-line text may hold tabs and line breaks (\n or \r\n), nothing else of Cc.
_CONTROL_IN_LINES = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]|\r(?!\n)")


def invalid_unicode(text: str) -> bool:
    return _INVALID_UNICODE.search(text) is not None


def control_character(text: str, *, multiline: bool = False) -> bool:
    """Whether `text` holds a control character that its kind of field does not allow."""
    return (_CONTROL_IN_LINES if multiline else _CONTROL_IN_LINE).search(text) is not None
