"""Stored text as XML 1.0 can hold it: what the xlsx and AMEFF exports write.

Validation accepts text that XML 1.0 has no character for: control characters other than tab,
newline and carriage return (a vertical tab pasted from Word, a NUL), the noncharacters U+FFFE
and U+FFFF, and unpaired surrogates. An xlsx workbook and an AMEFF file are XML, so an export
writing such text raised (openpyxl, lxml) or made a file no XML parser reads. Both exports
therefore write each such character as U+FFFD (the replacement character): the export never
fails on what the hub stores, and whoever opens it sees where a character was. The CSV export
is not XML and keeps the text as stored.
"""

from __future__ import annotations

import re
from typing import Final

__all__ = ["REPLACEMENT", "xml_text"]

REPLACEMENT: Final = "\ufffd"
#: Everything but XML 1.0's Char production (https://www.w3.org/TR/xml/#charsets).
_NOT_XML: Final = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def xml_text(text: str) -> str:
    """``text`` with every character XML 1.0 cannot hold replaced by :data:`REPLACEMENT`."""
    return _NOT_XML.sub(REPLACEMENT, text)
