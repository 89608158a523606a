"""Go's string and path semantics, where BuildKit's behaviour rests on them
(the Dockerfile parser, .dockerignore patterns): Python's own differ at the edges."""

from __future__ import annotations

import re

# unicode.IsSpace, which strings.TrimSpace uses; str.strip() and str.isspace()
# would also take the ASCII separators \x1c-\x1f, which Go keeps.
GO_SPACE = (
    "\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009"
    "\u200a\u2028\u2029\u202f\u205f\u3000"
)
_SURROGATE = re.compile("[\ud800-\udfff]")
_ESCAPES = {
    "\a": "\\a",
    "\b": "\\b",
    "\f": "\\f",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    "\v": "\\v",
    '"': '\\"',
    "\\": "\\\\",
}


def go_trim_space(text: str) -> str:
    """strings.TrimSpace."""
    return text.strip(GO_SPACE)


def go_lower(text: str) -> str:
    """strings.ToLower: simple per-rune mapping, invalid bytes become U+FFFD."""
    return "".join("i" if ch == "\u0130" else ch.lower() for ch in valid_runes(text))


def valid_runes(text: str) -> str:
    """What Go yields when it decodes runes: U+FFFD for every invalid byte."""
    return _SURROGATE.sub("\ufffd", text)


def byte_view(text: str) -> str:
    """One char per UTF-8 byte, for BuildKit code that walks bytes as runes."""
    return text.encode("utf-8", "surrogateescape").decode("latin-1")


def from_byte_view(view: str) -> str:
    return view.encode("latin-1").decode("utf-8", "surrogateescape")


def go_quote(text: str) -> str:
    """strconv.Quote."""
    out = ['"']
    for ch in text:
        code = ord(ch)
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif 0xDC80 <= code <= 0xDCFF:  # a surrogate-escaped invalid byte
            out.append(f"\\x{code - 0xDC00:02x}")
        elif ch.isprintable():
            out.append(ch)
        elif code < 0x20 or code == 0x7F:
            out.append(f"\\x{code:02x}")
        elif code < 0x10000:
            out.append(f"\\u{code:04x}")
        else:
            out.append(f"\\U{code:08x}")
    out.append('"')
    return "".join(out)


def go_clean(path: str) -> str:
    """Go's filepath.Clean for "/"-separated paths (posixpath.normpath keeps "//")."""
    rooted = path.startswith("/")
    parts: list[str] = []
    for part in path.split("/"):
        if part in ("", "."):
            continue
        if part != "..":
            parts.append(part)
        elif parts and parts[-1] != "..":
            parts.pop()
        elif not rooted:  # a relative path keeps the ".." it cannot resolve
            parts.append("..")
    cleaned = "/".join(parts)
    if rooted:
        return "/" + cleaned
    return cleaned or "."
