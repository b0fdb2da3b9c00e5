"""What the service takes as text. Free text may hold tabs and newlines but no other
control characters, and none of the Unicode characters that reorder how text is shown
(bidi embeddings, overrides and isolates: U+202A–U+202E, U+2066–U+2069), which can make a
justification, a name or a case reference read differently from what is stored. The
left-to-right and right-to-left marks (U+200E, U+200F, U+061C) are allowed: they only
steer neutral characters next to them, and real names and notes in Arabic or Hebrew use
them. A one-line value (a case reference, a title, a name, an id) also refuses tabs and
line breaks (including U+2028 and U+2029), since it reaches email subject lines."""

from __future__ import annotations

import re

_BIDI = "\u202a-\u202e\u2066-\u2069"
#: C0 and C1 controls (and DEL) other than tab and newline, and the bidi controls.
_NOT_TEXT = re.compile(f"[\x00-\x08\x0b-\x1f\x7f-\x9f{_BIDI}]")
#: What a one-line value may not hold besides: tabs and line breaks.
_NOT_ONE_LINE = re.compile("[\t\n\x0b\x0c\r\x85\u2028\u2029]")


def _describe(character: str) -> str:
    code = ord(character)
    if character == "\n":
        return "a line break"
    if character == "\t":
        return "a tab"
    if 0x202A <= code <= 0x202E or 0x2066 <= code <= 0x2069:
        return f"a bidirectional control (U+{code:04X})"
    if character in "\u2028\u2029":
        return f"a line separator (U+{code:04X})"
    return f"a control character (U+{code:04X})"


def text_problem(value: str, *, one_line: bool = False) -> str | None:
    """Why ``value`` is not acceptable text, or None if it is."""
    found = _NOT_TEXT.search(value)
    if found is None and one_line:
        found = _NOT_ONE_LINE.search(value)
    if found is None:
        return None
    where = "on one line, without" if one_line and found.group() in "\t\n\u2028\u2029" else "without"
    return f"Give plain text {where} {_describe(found.group())}."
