"""Telling whether two records are of the same person.

An ``external_id`` (an NHS number, a council's client number) is compared in a normal
form, its *key*, so that the ways one id is typed land on one person:

- compatibility forms are unified (NFKC: full-width digits, ligatures) and case is folded;
- invisible format characters (Unicode category Cf: zero-width spaces and joiners, soft
  hyphens, byte-order marks, bidi marks) are dropped;
- spaces (any Unicode space), hyphens and dashes, dots and underscores are dropped;
- a leading ``NHS`` scheme name (also ``NHS:``, ``NHS No.``, ``NHS number``) is dropped when
  what follows is ten digits, an NHS number (``NHS-943 476 5919`` = ``9434765919``). No other
  prefix is dropped: ``CHI1234567890`` and ``1234567890`` stay two ids, since the digits
  alone do not say which scheme they are.

The id is kept as given, for display; the key is what is unique.
"""

from __future__ import annotations

import re
import unicodedata

#: Separators people type inside ids, all ignored: spaces, hyphens and dashes, dots, underscores.
_SEPARATORS = re.compile(r"[\s\-\u2010-\u2015\u2212\ufe58\ufe63\uff0d._\u00b7]+")
_NHS_NUMBER = re.compile(r"nhs(?:number|no)?:?([0-9]{10})")


def external_id_key(value: str) -> str:
    """The normal form of an external id (see the module's docstring); "" when nothing but
    separators and invisible characters was given."""
    text = unicodedata.normalize("NFKC", value)
    text = "".join(character for character in text if unicodedata.category(character) != "Cf")
    text = _SEPARATORS.sub("", text.casefold())
    nhs = _NHS_NUMBER.fullmatch(text)
    return nhs.group(1) if nhs else text


def name_key(value: str) -> str:
    """A name compared as people read it: case, spacing, accents and invisible characters
    ignored (``Zoë Brûlé`` = ``zoe brule``)."""
    text = unicodedata.normalize("NFKD", unicodedata.normalize("NFKC", value))
    text = "".join(character for character in text if unicodedata.category(character) not in ("Cf", "Mn"))
    return " ".join(text.casefold().split())
