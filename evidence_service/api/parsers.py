"""The JSON parser, hardened, so that no body can make a server error or take a worker's
memory:

- a body larger than ``DATA_UPLOAD_MAX_MEMORY_SIZE`` (2.5 MB) is refused with 413 before
  it is read in full (DRF reads the stream itself, so Django's own limit never applies);
- a body nested deeply enough to exhaust Python's recursion limit, or holding a number too
  long to convert, is a parse error (400);
- a lone surrogate (``"\\ud800"``, which JSON allows and no UTF-8 answer can carry) anywhere
  in the body, key or value, is refused with 400 naming the field, before any serializer
  would quote it back in an error message that could not be encoded;
- a string holding a control character other than tab and newline, or a bidirectional
  control (``evidence_service.text``), is refused with 400 naming the field: this is where
  every free-text field of the API is checked, whatever serializer reads it. A carriage
  return before a newline (what a browser's text box sends) is taken as the newline alone.
"""

from __future__ import annotations

import codecs
import io
import re
from typing import Any

from django.conf import settings
from rest_framework import exceptions
from rest_framework.parsers import JSONParser

from evidence_service.text import text_problem


class BodyTooLarge(exceptions.APIException):
    status_code = 413
    default_code = "too_large"


# In UTF-8 only a \u escape can put a surrogate into the parsed body (raw UTF-8 cannot
# encode one), so such bodies without that escape are not walked.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")
_SURROGATE = re.compile("[\ud800-\udfff]")


def _printable(text: str) -> str:
    return text.encode("utf-8", "backslashreplace").decode("ascii", "backslashreplace")


def _surrogate_in(value: Any, path: str = "") -> tuple[str, str] | None:
    """The dotted path of the first string (key or value) holding a lone surrogate, and that
    character; None if there is none."""
    if isinstance(value, str):
        found = _SURROGATE.search(value)
        return (path, found.group()) if found else None
    if isinstance(value, dict):
        items = value.items()
    elif isinstance(value, list):
        items = ((str(index), item) for index, item in enumerate(value))
    else:
        return None
    for key, item in items:
        where = f"{path}.{key}" if path else key
        found = _SURROGATE.search(key)
        if found:
            return _printable(where), found.group()
        inner = _surrogate_in(item, where)
        if inner:
            return inner
    return None


# What, in a UTF-8 body, can put a refused character into the parsed body: a \\u escape of a
# C0 or C1 control or a bidi control, the \\b, \\f or \\r escapes, or a bidi control or C1
# control written as UTF-8. A body with none of these (nearly every body) is not walked.
_NOT_TEXT_IN_BODY = re.compile(
    rb"\\u00[0189][0-9a-fA-F]|\\u007[fF]|\\u20(?:2[a-eA-E]|6[6-9])|\\[bfr]"
    rb"|\xe2\x80[\xaa-\xae]|\xe2\x81[\xa6-\xa9]|\xc2[\x80-\x9f]|\x7f"
)

#: Keys whose values are secrets, not text: never quoted, never refused here.
_SECRET_KEYS = frozenset({"password", "current_password", "new_password"})


def _clean_text(value: Any, path: str = "") -> tuple[Any, tuple[str, str] | None]:
    """``value`` with CRLF taken as LF in every string, and the dotted path of the first
    string holding a character that is not text (with why), or None."""
    if isinstance(value, str):
        if "\r\n" in value:
            value = value.replace("\r\n", "\n")
        problem = text_problem(value)
        return value, ((path, problem) if problem else None)
    if isinstance(value, dict):
        for key in list(value):
            if key in _SECRET_KEYS:
                continue
            value[key], found = _clean_text(value[key], f"{path}.{key}" if path else key)
            if found:
                return value, found
    elif isinstance(value, list):
        for index, item in enumerate(value):
            value[index], found = _clean_text(item, f"{path}.{index}" if path else str(index))
            if found:
                return value, found
    return value, None


def _utf8(parser_context) -> bool:
    """Whether the body is read as UTF-8, in which only a \\u escape can carry a surrogate;
    in another charset (UTF-16's bytes interleave the escape, UTF-7 needs none) the parsed
    body is always walked."""
    encoding = (parser_context or {}).get("encoding") or settings.DEFAULT_CHARSET
    try:
        return codecs.lookup(encoding).name == "utf-8"
    except LookupError:
        return False


class SafeJSONParser(JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        request = (parser_context or {}).get("request")
        declared = request.META.get("CONTENT_LENGTH", "") if request is not None else ""
        if limit is not None and declared.isdigit() and int(declared) > limit:
            raise BodyTooLarge(f"The request body is larger than {limit:,} bytes.")
        body = stream.read() if limit is None else stream.read(limit + 1)
        if limit is not None and len(body) > limit:
            raise BodyTooLarge(f"The request body is larger than {limit:,} bytes.")
        try:
            data = super().parse(io.BytesIO(body), media_type, parser_context)
        except RecursionError:
            raise exceptions.ParseError("JSON parse error - the body is nested too deeply.") from None
        except exceptions.ParseError as error:
            if "int_max_str_digits" in str(error.detail):
                raise exceptions.ParseError("JSON parse error - a number has too many digits.") from None
            raise
        if not _utf8(parser_context) or _SURROGATE_ESCAPE.search(body):
            found = _surrogate_in(data)
            if found:
                where, character = found
                raise exceptions.ValidationError(
                    {where or "non_field_errors": [f"Surrogate characters are not allowed: U+{ord(character):X}."]}
                )
        if not _utf8(parser_context) or _NOT_TEXT_IN_BODY.search(body):
            data, found = _clean_text(data)
            if found:
                where, problem = found
                raise exceptions.ValidationError({_printable(where) or "non_field_errors": [problem]})
        return data
