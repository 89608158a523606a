"""Go regular expressions, matched in linear time.

BuildKit turns `.dockerignore` patterns and `${VAR#pattern}` style shell
patterns into Go regular expressions.  Go's regexp package is a port of RE2:
same syntax, same leftmost-first semantics, and a match time linear in the
text.  Python's `re` backtracks instead, so a pattern such as
`*a*a*a*a*a*a*a*x` against a long name of `a`s takes exponential time and
would stall the daemon.  So the Go source is handed to RE2 itself (the
google-re2 binding, maintained with RE2), which reads it as Go does.

The binding's low-level module is called directly: its `re`-like wrapper
re-encodes the text and builds a match object on every call, four times the
cost of the match on a short path.
"""

from __future__ import annotations

import re2
from re2 import _re2

__all__ = ["GoRegexp"]

_OPTIONS = re2.Options()
_OPTIONS.never_capture = True
_OPTIONS.log_errors = False
_UNANCHORED = _re2.RE2.Anchor.UNANCHORED
_ANCHOR_START = _re2.RE2.Anchor.ANCHOR_START
_NO_MATCH = (-1, -1)


def _go_only_syntax_error(source: str) -> str | None:
    """What Go rejects that RE2 accepts: the any-byte escape "\\C"."""
    i = source.find("\\")
    while i >= 0:
        if source.startswith("C", i + 1):
            return "invalid escape sequence: `\\C`"
        i = source.find("\\", i + 2)
    return None


def _utf8(text: str) -> bytes:
    """The text as Go's regexp sees it: an undecodable byte reads as U+FFFD."""
    try:
        return text.encode()
    except UnicodeEncodeError:
        # os.fsdecode keeps each undecodable byte as one lone surrogate.
        return "".join("\ufffd" if "\udc80" <= char <= "\udcff" else char for char in text).encode()


class GoRegexp:
    """One compiled Go regular expression (Go's default, Perl-like flags)."""

    __slots__ = ("_regexp", "source")

    def __init__(self, source: str) -> None:
        """Compile like Go's regexp.Compile; ValueError with Go's reason where it fails."""
        self.source = source
        problem = _go_only_syntax_error(source)
        try:
            encoded = source.encode()
        except UnicodeEncodeError:
            problem = "invalid UTF-8"
        if problem is None:
            self._regexp = _re2.RE2(encoded, _OPTIONS)
            if not self._regexp.ok():
                problem = self._regexp.error()
        if problem is not None:
            raise ValueError(f"error parsing regexp: {problem}")

    def search(self, text: str) -> bool:
        """Does the expression match anywhere in text (Go's MatchString)?"""
        data = _utf8(text)
        return self._regexp.Match(_UNANCHORED, data, 0, len(data))[0] != _NO_MATCH

    def find(self, text: str, pos: int = 0, anchored: bool = False) -> tuple[int, int] | None:
        """Start and end (in characters) of the leftmost match at or after pos, or None.

        anchored: the match must start at pos.
        """
        data = _utf8(text)
        byte_pos = len(text[:pos].encode("utf-8", "surrogatepass")) if pos else 0
        start, end = self._regexp.Match(_ANCHOR_START if anchored else _UNANCHORED, data, byte_pos, len(data))[0]
        if start < 0:
            return None
        if len(data) == len(text):  # ASCII: bytes are characters
            return start, end
        char_start = _re2.BytesToCharLen(data, 0, start)
        return char_start, char_start + _re2.BytesToCharLen(data, start, end)
