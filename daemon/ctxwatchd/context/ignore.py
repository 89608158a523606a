"""Docker's path patterns: .dockerignore files, their matcher, and COPY wildcards.

Three Go behaviours are reproduced here, because a cache-hit prediction is only
as good as its idea of which files BuildKit sends and copies:

* ``read_ignore_file``: ``moby/patternmatcher/ignorefile.ReadAll``.
* ``PathMatcher``: ``moby/patternmatcher.PatternMatcher`` as BuildKit's file
  walker (``tonistiigi/fsutil``) drives it, including the walker's rule for
  skipping excluded directories.
* ``filepath_match``: Go's ``path/filepath.Match`` on "/"-separated paths, used
  for COPY/ADD wildcard sources.

patternmatcher turns each pattern into a Go regular expression by a plain text
substitution that does not know about character classes.  To stay faithful we
build that same Go expression and then read it the way Go's regexp parser does
(``_re2_to_python``), rather than translating the glob directly.
"""

from __future__ import annotations

import enum
import functools
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

__all__ = [
    "IgnoreFileError",
    "MatchState",
    "PathMatcher",
    "filepath_match",
    "has_wildcard",
    "read_ignore_file",
]

_BAD_PATTERN = "syntax error in pattern"  # the text of Go's filepath.ErrBadPattern


class IgnoreFileError(ValueError):
    """A .dockerignore line that Docker would refuse."""

    def __init__(self, line: int, problem: str) -> None:
        super().__init__(f".dockerignore line {line}: {problem}")
        self.line = line
        self.problem = problem


# --------------------------------------------------------------------------
# Go string and path helpers

# unicode.IsSpace, which strings.TrimSpace uses; str.strip() would also eat
# the ASCII separators \x1c-\x1f, which Go keeps.
_GO_SPACE = "\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"


def _go_trim_space(s: str) -> str:
    return s.strip(_GO_SPACE)


def _go_clean(path: str) -> str:
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


# --------------------------------------------------------------------------
# Character classes, as Python regex text


def _class_regex(ranges: Sequence[tuple[str, str]], negated: bool) -> str:
    """A regex for one character in (or, negated, not in) the inclusive ranges."""
    # Go's filepath.Match accepts reversed ranges such as "z-a" and lets them
    # match nothing, where Python's re would refuse them.
    usable = [(lo, hi) for lo, hi in ranges if lo <= hi]
    if not usable:
        return "(?s:.)" if negated else "(?!)"
    body = "".join(re.escape(lo) if lo == hi else f"{re.escape(lo)}-{re.escape(hi)}" for lo, hi in usable)
    return f"[^{body}]" if negated else f"[{body}]"


# --------------------------------------------------------------------------
# Go's path/filepath.Match


class _Chunk(NamedTuple):
    """A run of single-character terms, optionally preceded by a "*"."""

    star: bool
    regex: re.Pattern[str] | None  # None: a trailing "*" with nothing after it


def _glob_class_char(pattern: str, i: int) -> tuple[str, int]:
    """One possibly escaped character inside "[...]" (Go's getEsc)."""
    if i >= len(pattern) or pattern[i] in "-]":
        raise ValueError(_BAD_PATTERN)
    if pattern[i] == "\\":
        i += 1
        if i >= len(pattern):
            raise ValueError(_BAD_PATTERN)
    if i + 1 >= len(pattern):  # the class never closes
        raise ValueError(_BAD_PATTERN)
    return pattern[i], i + 1


def _glob_class(pattern: str, i: int) -> tuple[str, int]:
    """Parse a class whose "[" is just before index i; return its regex and the index after "]"."""
    negated = pattern.startswith("^", i)
    if negated:
        i += 1
    ranges: list[tuple[str, str]] = []
    # A "]" closes the class only once it holds a range; first it is an error.
    while not (ranges and pattern.startswith("]", i)):
        lo, i = _glob_class_char(pattern, i)
        hi = lo
        if pattern[i] == "-":
            hi, i = _glob_class_char(pattern, i + 1)
        ranges.append((lo, hi))
    return _class_regex(ranges, negated), i + 1


@functools.lru_cache(maxsize=4096)
def _compile_glob(pattern: str) -> tuple[_Chunk, ...]:
    """Split a filepath.Match pattern into chunks, raising ValueError if it is malformed.

    Go's Match checks the whole pattern even when the name fails early, so a
    malformed pattern is an error whatever name it is matched against.
    """
    chunks = []
    i = 0
    while i < len(pattern):
        star = False
        while pattern.startswith("*", i):
            star, i = True, i + 1
        parts = []
        while i < len(pattern) and pattern[i] != "*":
            char = pattern[i]
            if char == "?":
                parts.append("[^/]")
                i += 1
            elif char == "[":
                part, i = _glob_class(pattern, i + 1)
                parts.append(part)
            elif char == "\\":
                if i + 1 == len(pattern):
                    raise ValueError(_BAD_PATTERN)
                parts.append(re.escape(pattern[i + 1]))
                i += 2
            else:
                parts.append(re.escape(char))
                i += 1
        chunks.append(_Chunk(star, re.compile("".join(parts)) if parts else None))
    return tuple(chunks)


def _chunk_end(chunk: _Chunk, name: str, pos: int, is_last: bool) -> int | None:
    """Where the chunk ends when placed at the first position that fits, or None.

    Like Go, a "*" takes the shortest run (of non-"/" characters) after which
    the chunk matches, and never reconsiders it later; only the last chunk has
    to reach the end of the name.
    """
    start = pos
    while True:
        found = chunk.regex.match(name, start)
        if found and (not is_last or found.end() == len(name)):
            return found.end()
        if not chunk.star or start >= len(name) or name[start] == "/":
            return None
        start += 1


def filepath_match(pattern: str, name: str) -> bool:
    """Go's filepath.Match: does the whole of name match the shell pattern?

    "*" and "?" never match "/".  Raises ValueError (Go's ErrBadPattern) for a
    malformed pattern.
    """
    chunks = _compile_glob(pattern)
    pos = 0
    for index, chunk in enumerate(chunks):
        if chunk.regex is None:
            return "/" not in name[pos:]
        end = _chunk_end(chunk, name, pos, is_last=index == len(chunks) - 1)
        if end is None:
            return False
        pos = end
    return pos == len(name)


def has_wildcard(s: str) -> bool:
    """True if s has an unescaped "*", "?" or "[" (BuildKit's containsWildcards).

    A backslash escapes the character after it, so "a\\*" is a plain name.
    """
    escaped = False
    for char in s:
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif char in "*?[":
            return True
    return False


# --------------------------------------------------------------------------
# Stage 1: the Go regular expression moby/patternmatcher builds for a pattern


class _Kind(enum.Enum):
    EXACT = "exact"  # no wildcard: compare strings
    PREFIX = "prefix"  # "<literal>**": starts with <literal>
    SUFFIX = "suffix"  # "**<literal>": ends with <literal>
    REGEXP = "regexp"


# Regex metacharacters that mean nothing to filepath.Match, escaped as text.
_ESCAPED_AS_TEXT = frozenset(".+()|{}$")


def _patternmatcher_regex(pattern: str) -> tuple[_Kind, str]:
    """The match kind and Go regexp source patternmatcher derives from a cleaned pattern."""
    kind = _Kind.EXACT
    out = ["^"]
    # Go reads the pattern with text/scanner, which skips a leading BOM.
    i = 1 if pattern.startswith("\ufeff") else 0
    first = i
    while i < len(pattern):
        char, at_start = pattern[i], i == first
        i += 1
        if char == "*" and pattern.startswith("*", i):
            i += 1
            if pattern.startswith("/", i):  # "**/" is read as "**"
                i += 1
            if i < len(pattern):
                out.append("(.*/)?")
                kind = _Kind.REGEXP
            elif kind is _Kind.EXACT:
                kind = _Kind.PREFIX
            else:
                out.append(".*")
                kind = _Kind.REGEXP
            if at_start:
                kind = _Kind.SUFFIX
        elif char == "*":
            out.append("[^/]*")
            kind = _Kind.REGEXP
        elif char == "?":
            out.append("[^/]")
            kind = _Kind.REGEXP
        elif char in _ESCAPED_AS_TEXT:
            out.append("\\" + char)
        elif char == "\\":
            # Syntax checking already refused a trailing backslash.
            out.append("\\" + pattern[i])
            i += 1
            kind = _Kind.REGEXP
        else:
            out.append(char)
            if char in "[]":
                kind = _Kind.REGEXP
    out.append("$")
    return kind, "".join(out)


# --------------------------------------------------------------------------
# Stage 2: read that Go regexp source as Go's regexp/syntax would, emit Python

# Go regexp POSIX classes, as pairs of range ends.
_POSIX_CLASSES = {
    "alnum": "09AZaz",
    "alpha": "AZaz",
    "ascii": "\x00\x7f",
    "blank": "\t\t  ",
    "cntrl": "\x00\x1f\x7f\x7f",
    "digit": "09",
    "graph": "!~",
    "lower": "az",
    "print": " ~",
    "punct": "!/:@[`{~",
    "space": "\t\r  ",
    "upper": "AZ",
    "word": "09AZ__az",
    "xdigit": "09AFaf",
}

_RE2_OPERATORS = {"^": r"\A", "$": r"\Z", "(": "(?:", ")": ")", ".": ".", "*": "*", "?": "?"}


def _re2_escaped(char: str) -> str:
    """The character a Go regexp escape "\\<char>" stands for."""
    if char.isascii() and not char.isalnum():
        return char
    # "\d", "\w", "\b"... are classes or assertions in Go's regexp and most
    # other letters are errors: not the literal that filepath.Match reads.
    raise ValueError(f"unsupported escape \\{char}: patternmatcher hands it to Go's regexp, which does not read it as a literal")


def _posix_ranges(spec: str) -> list[tuple[str, str]]:
    """Ranges of a "[:name:]" or "[:^name:]" class."""
    name = spec[2:-2]
    negated = name.startswith("^")
    ends = _POSIX_CLASSES.get(name.removeprefix("^"))
    if ends is None:
        raise ValueError(f"invalid character class range: {spec}")
    ranges = list(zip(ends[::2], ends[1::2]))
    return _complement(ranges) if negated else ranges


def _complement(ranges: list[tuple[str, str]]) -> list[tuple[str, str]]:
    out = []
    next_free = 0
    for lo, hi in sorted(ranges):
        if ord(lo) > next_free:
            out.append((chr(next_free), chr(ord(lo) - 1)))
        next_free = max(next_free, ord(hi) + 1)
    out.append((chr(next_free), chr(0x10FFFF)))
    return out


def _re2_class_char(src: str, i: int) -> tuple[str, int]:
    if src[i] == "\\":
        return _re2_escaped(src[i + 1]), i + 2
    return src[i], i + 1


def _re2_class(src: str, i: int) -> tuple[str, int]:
    """Parse a Go regexp class whose "[" is just before index i."""
    negated = src.startswith("^", i)
    if negated:
        i += 1
    ranges: list[tuple[str, str]] = []
    first = True  # Go's regexp reads a "]" right after "[" or "[^" as a literal
    while first or not src.startswith("]", i):
        first = False
        if i >= len(src):
            raise ValueError("missing closing ]")
        end = src.find(":]", i + 2) if src.startswith("[:", i) else -1
        if end >= 0:
            ranges += _posix_ranges(src[i : end + 2])
            i = end + 2
            continue
        lo, i = _re2_class_char(src, i)
        hi = lo
        if src.startswith("-", i) and i + 1 < len(src) and src[i + 1] != "]":
            hi, i = _re2_class_char(src, i + 1)
            if hi < lo:
                raise ValueError(f"invalid character class range: {lo}-{hi}")
        ranges.append((lo, hi))
    return _class_regex(ranges, negated), i + 1


def _re2_to_python(src: str) -> str:
    """Python regex text equivalent to the Go regexp source stage 1 produces."""
    out = []
    i = 0
    while i < len(src):
        char = src[i]
        if char == "[":
            part, i = _re2_class(src, i + 1)
        elif char == "\\":
            part, i = re.escape(_re2_escaped(src[i + 1])), i + 2
        else:
            part, i = _RE2_OPERATORS.get(char) or re.escape(char), i + 1
        out.append(part)
    return "".join(out)


def _path_predicate(pattern: str) -> Callable[[str], object]:
    """A truthy-result test of one path against one cleaned pattern."""
    kind, source = _patternmatcher_regex(pattern)
    if kind is _Kind.EXACT:
        return pattern.__eq__
    if kind is _Kind.PREFIX:
        prefix = pattern[:-2]
        return lambda path: path.startswith(prefix)
    if kind is _Kind.SUFFIX:
        # The literal is compared as is, so "**.txt" also matches "a.txt".
        suffix = pattern[2:]
        bare = suffix[1:] if suffix.startswith("/") else None  # "**/foo" matches "foo"
        return lambda path: path.endswith(suffix) or path == bare
    return re.compile(_re2_to_python(source)).match


# --------------------------------------------------------------------------
# The matcher


@dataclass(frozen=True)
class _Pattern:
    text: str  # cleaned, without the leading "!"
    exception: bool
    matches: Callable[[str], object]


class MatchState(NamedTuple):
    """What PathMatcher.match knows about a path; pass a directory's to its entries."""

    excluded: bool
    hits: int  # bit i: pattern i matched this path or an ancestor (patternmatcher's MatchInfo)


def _ancestors(rel_path: str) -> list[str]:
    """"a/b/c" -> ["a", "a/b"]."""
    return [rel_path[:i] for i, char in enumerate(rel_path) if char == "/"]


def _descend_prefixes(patterns: Sequence[_Pattern]) -> tuple[str, ...] | None:
    """fsutil's "dir/" prefixes of the exception patterns, or None when one has a wildcard.

    fsutil strips a trailing "/**" and then "/*"; if any exception still holds
    a pattern character it cannot reason about prefixes and walks every
    excluded directory.
    """
    prefixes = []
    for pattern in patterns:
        if not pattern.exception:
            continue
        text = pattern.text.removesuffix("/**").removesuffix("/*")
        if any(char in text for char in "*[]?^\\"):
            return None
        prefixes.append(text + "/")
    return tuple(prefixes)


class PathMatcher:
    """A compiled list of .dockerignore-style patterns (also used for COPY --exclude).

    Paths are "/"-separated and relative to the context root, without a
    leading "/".  A pattern excludes what it matches and everything under it;
    "!pattern" re-includes; the last matching pattern wins.
    """

    def __init__(self, patterns: Sequence[str]) -> None:
        """Compile like patternmatcher.New; raises ValueError on a bad pattern."""
        compiled = []
        for raw in patterns:
            text = _go_trim_space(raw)
            if not text:
                continue
            # New cleans before looking for "!", so "!./a" stays "./a".
            text = _go_clean(text)
            exception = text.startswith("!")
            if exception:
                if text == "!":
                    raise ValueError('illegal exclusion pattern: "!"')
                text = text[1:]
            _compile_glob(text)  # New refuses what filepath.Match calls malformed
            compiled.append(_Pattern(text, exception, _path_predicate(text)))
        self._compiled = tuple(compiled)
        self._has_exceptions = any(p.exception for p in compiled)
        self._descend = _descend_prefixes(compiled)

    @property
    def patterns(self) -> tuple[str, ...]:
        """The cleaned patterns, exceptions with their leading "!"."""
        return tuple("!" + p.text if p.exception else p.text for p in self._compiled)

    @property
    def has_exceptions(self) -> bool:
        """True if any pattern starts with "!"."""
        return self._has_exceptions

    def match(self, rel_path: str, parent: MatchState | None = None) -> MatchState:
        """patternmatcher's MatchesUsingParentResults.

        Pass the state of rel_path's directory as parent, as BuildKit's walker
        does, so each path is matched once.  Without a parent, every ancestor
        is tested instead (MatchesOrParentMatches), which is what BuildKit
        does for top-level entries.
        """
        inherited = parent.hits if parent is not None else 0
        ancestors = _ancestors(rel_path) if parent is None else []
        excluded = False
        hits = 0
        for index, pattern in enumerate(self._compiled):
            bit = 1 << index
            if not inherited & bit:
                # An include pattern cannot change an excluded path, nor an
                # exception an included one, so they are not even tried; the
                # skipped pattern is then not remembered for the children.
                if pattern.exception != excluded:
                    continue
                if not (pattern.matches(rel_path) or any(map(pattern.matches, ancestors))):
                    continue
            hits |= bit
            excluded = not pattern.exception
        return MatchState(excluded, hits)

    def excluded(self, rel_path: str, parent_excluded: bool = False) -> bool:
        """Is rel_path left out of the context, given its directory's answer?

        parent_excluded is the answer for rel_path's directory (False for a
        top-level entry).  With exception patterns a bool is not enough state
        (see match), so the answer is then worked out from the ancestors.
        """
        if self._has_exceptions:
            return self.excluded_full(rel_path)
        return parent_excluded or any(p.matches(rel_path) for p in self._compiled)

    def excluded_full(self, rel_path: str) -> bool:
        """The answer BuildKit's walk gives for rel_path, with no parent result."""
        state = None
        for path in [*_ancestors(rel_path), rel_path]:
            state = self.match(path, state)
        return state.excluded

    def may_include_under(self, rel_dir: str) -> bool:
        """For an excluded directory: might an exception re-include something below it?

        This is fsutil's test for walking into an excluded directory rather
        than skipping it: only exception patterns count, by literal prefix,
        and any wildcard in one of them means every excluded directory is walked.
        """
        if not self._has_exceptions:
            return False
        if self._descend is None:
            return True
        dir_slash = rel_dir + "/"
        return any(prefix.startswith(dir_slash) for prefix in self._descend)


# --------------------------------------------------------------------------
# .dockerignore files

# bufio.Scanner's default token limit: ReadAll fails on a longer line.
_MAX_LINE_BYTES = 64 * 1024


def _ignore_line(line: str) -> str | None:
    """The pattern a .dockerignore line holds (ReadAll's rules), or None."""
    # Only a "#" in the first column starts a comment: " # x" is a pattern.
    if line.startswith("#"):
        return None
    pattern = _go_trim_space(line)
    if not pattern:
        return None
    invert = pattern.startswith("!")
    if invert:
        pattern = _go_trim_space(pattern[1:])
        if not pattern:
            raise ValueError('illegal exclusion pattern: "!"')
    pattern = _go_clean(pattern)
    if len(pattern) > 1 and pattern.startswith("/"):
        pattern = pattern[1:]
    return "!" + pattern if invert else pattern


def read_ignore_file(text: str | bytes) -> list[str]:
    """The patterns of a .dockerignore file, normalized as ignorefile.ReadAll does.

    Exceptions keep their leading "!".  Raises IgnoreFileError for a line
    Docker would refuse (a lone "!", a malformed pattern, an overlong line).
    """
    if isinstance(text, bytes):
        # Keep undecodable bytes as they are, as Go's strings do.
        text = text.decode("utf-8", "surrogateescape")
    lines = text.split("\n")
    if lines[-1] == "":  # the final newline ends a line, it does not start one
        lines.pop()
    patterns = []
    for number, line in enumerate(lines, start=1):
        try:
            if len(line.encode("utf-8", "surrogateescape")) >= _MAX_LINE_BYTES:
                raise ValueError("line too long")
            if number == 1:
                line = line.removeprefix("\ufeff")
            pattern = _ignore_line(line.removesuffix("\r"))
            if pattern is not None:
                PathMatcher([pattern])  # report a bad pattern with its line
                patterns.append(pattern)
        except ValueError as exc:
            raise IgnoreFileError(number, str(exc)) from None
    return patterns
