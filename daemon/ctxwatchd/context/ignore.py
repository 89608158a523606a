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
build that same Go expression and hand it to RE2, the engine Go's regexp is a
port of (``ctxwatchd.goregexp``): Python's ``re`` would read it nearly the same
way but backtrack, exponentially so on a pattern like ``*a*a*a*a*a*a*a*x``.
"""

from __future__ import annotations

import enum
import functools
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import NamedTuple, NoReturn

from ctxwatchd.goregexp import GoRegexp
from ctxwatchd.limits import MAX_IGNORE_PATTERNS

from ..gostrings import go_clean, go_trim_space

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


@functools.lru_cache(maxsize=4096)
def _glob_chunks(pattern: str) -> tuple[tuple[bool, str], ...]:
    """Split a pattern as Go's scanChunk does: (preceded by "*"?, run of single-character terms)."""
    chunks = []
    i = 0
    while i < len(pattern):
        star = pattern.startswith("*", i)
        while pattern.startswith("*", i):
            i += 1
        end = _chunk_stop(pattern, i)
        chunks.append((star, pattern[i:end]))
        i = end
    return tuple(chunks)


def _chunk_stop(pattern: str, i: int) -> int:
    """Index of the next "*" that is not escaped or inside brackets, else len(pattern)."""
    in_brackets = False
    while i < len(pattern):
        char = pattern[i]
        if char == "\\":
            i += 1
        elif char == "[":
            in_brackets = True
        elif char == "]":
            in_brackets = False
        elif char == "*" and not in_brackets:
            return i
        i += 1
    return len(pattern)


def _glob_class_char(chunk: str, i: int) -> tuple[str, int]:
    """One possibly escaped character inside "[...]" (Go's getEsc)."""
    if i >= len(chunk) or chunk[i] in "-]":
        raise ValueError(_BAD_PATTERN)
    if chunk[i] == "\\":
        i += 1
        if i >= len(chunk):
            raise ValueError(_BAD_PATTERN)
    if i + 1 >= len(chunk):  # the class never closes
        raise ValueError(_BAD_PATTERN)
    return chunk[i], i + 1


def _glob_class(chunk: str, i: int) -> tuple[str, int]:
    """Parse a class whose "[" is just before index i; return its regex and the index after "]"."""
    negated = chunk.startswith("^", i)
    if negated:
        i += 1
    ranges: list[tuple[str, str]] = []
    # A "]" closes the class only once it holds a range; first it is an error.
    while not (ranges and chunk.startswith("]", i)):
        lo, i = _glob_class_char(chunk, i)
        hi = lo
        if chunk[i] == "-":
            hi, i = _glob_class_char(chunk, i + 1)
        ranges.append((lo, hi))
    return _class_regex(ranges, negated), i + 1


@functools.lru_cache(maxsize=4096)
def _chunk_regex(chunk: str) -> re.Pattern[str]:
    """Compile a chunk's single-character terms; ValueError if it is malformed."""
    parts = []
    i = 0
    while i < len(chunk):
        char = chunk[i]
        if char == "?":
            parts.append("[^/]")
            i += 1
        elif char == "[":
            part, i = _glob_class(chunk, i + 1)
            parts.append(part)
        elif char == "\\":
            if i + 1 == len(chunk):
                raise ValueError(_BAD_PATTERN)
            parts.append(re.escape(chunk[i + 1]))
            i += 2
        else:
            parts.append(re.escape(char))
            i += 1
    return re.compile("".join(parts))


def _chunk_end(regex: re.Pattern[str], star: bool, name: str, pos: int, is_last: bool) -> int | None:
    """Where a chunk ends when placed at the first position that fits, or None.

    Like Go, a "*" takes the shortest run of non-"/" characters after which
    the chunk matches and never reconsiders it; only the last chunk has to
    reach the end of the name.
    """
    start = pos
    while True:
        found = regex.match(name, start)
        if found and (not is_last or found.end() == len(name)):
            return found.end()
        if not star or start >= len(name) or name[start] == "/":
            return None
        start += 1


def filepath_match(pattern: str, name: str) -> bool:
    """Go's filepath.Match: does the whole of name match the shell pattern?

    "*" and "?" never match "/".  Raises ValueError (Go's ErrBadPattern) for a
    malformed pattern; like Go, only for the part of the pattern that was
    reached before the match failed, so filepath_match("a*[", "b") is False.
    """
    chunks = _glob_chunks(pattern)
    pos = 0
    for index, (star, chunk) in enumerate(chunks):
        if star and not chunk:  # a trailing "*"
            return name.find("/", pos) < 0
        end = _chunk_end(_chunk_regex(chunk), star, name, pos, is_last=index == len(chunks) - 1)
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


# The regexp metacharacters patternmatcher escapes as text.  It means to
# escape "|", "{" and "}" too, but its lookup table only works for bytes below
# 64, so those three reach Go's regexp as operators: "a|b*" is an alternation.
_ESCAPED_AS_TEXT = frozenset(".+()$")


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
        elif char == "\\" and i < len(pattern):
            out.append("\\" + pattern[i])
            i += 1
            kind = _Kind.REGEXP
        elif char == "\\":
            # Go's lazy syntax check can let a trailing backslash through; it
            # then escapes the closing "$" (so the end is not anchored).
            out.append("\\")
        else:
            out.append(char)
            if char in "[]":
                kind = _Kind.REGEXP
    out.append("$")
    return kind, "".join(out)


def _path_predicate(pattern: str) -> Callable[[str], object]:
    """A truthy-result test of one path against one cleaned pattern."""
    kind, source = _patternmatcher_regex(pattern)
    if kind is _Kind.EXACT:
        return pattern.__eq__
    if kind is _Kind.PREFIX:
        prefix = pattern[:-2]
        return lambda path: path.startswith(prefix)
    if kind is _Kind.SUFFIX:
        # The literal is compared as is, so "**.txt" also matches "a.txt".  Go
        # cuts the "**" off by bytes, which differs only after a leading BOM.
        suffix = pattern.encode("utf-8", "surrogateescape")[2:].decode("utf-8", "surrogateescape")
        bare = suffix[1:] if suffix.startswith("/") else None  # "**/foo" matches "foo"
        return lambda path: path.endswith(suffix) or path == bare
    try:
        regexp = GoRegexp(source)
    except ValueError as exc:
        # patternmatcher compiles its regexp on first use, so a pattern Go's
        # regexp rejects only fails the paths it is actually tried on.
        return _RejectedPattern(str(exc))
    # Go's MatchString is unanchored: only the regexp's own "^" and "$" anchor,
    # which matters once a "|" splits it.
    return regexp.search


class _RejectedPattern:
    """The test of a pattern Go's regexp rejects: fails every path it is tried on."""

    def __init__(self, message: str) -> None:
        self.message = message

    def __call__(self, path: str) -> NoReturn:
        raise ValueError(self.message)


# --------------------------------------------------------------------------
# The matcher


def _literal_prefix(pattern: str) -> str:
    """Text that every path the pattern matches starts with ("" when unknown).

    Conservative: a Go regexp operator that patternmatcher leaves in
    ("|", "{", "}") or a leading BOM gives up, since an alternation or a
    repetition can reach past the literal part.
    """
    kind, _ = _patternmatcher_regex(pattern)
    if kind is _Kind.EXACT:
        return pattern
    if kind is _Kind.PREFIX:
        return pattern[:-2]
    if kind is _Kind.SUFFIX or any(char in pattern for char in "|{}\ufeff"):
        return ""
    end = min((i for i, char in enumerate(pattern) if char in "*?[\\"), default=len(pattern))
    return pattern[:end]


@dataclass(frozen=True)
class _Pattern:
    text: str  # cleaned, without the leading "!"
    exception: bool
    matches: Callable[[str], object]
    prefix: str  # every path it matches starts with this ("" for any path)


class MatchState(NamedTuple):
    """What PathMatcher.match knows about a path; pass a directory's to its entries."""

    excluded: bool
    hits: int  # bit i: pattern i matched this path or an ancestor (patternmatcher's MatchInfo)


def _ancestors(rel_path: str) -> list[str]:
    """ "a/b/c" -> ["a", "a/b"], from the cleaned directory part as Go's filepath.Dir gives it."""
    parent = go_clean(rel_path[: rel_path.rfind("/") + 1])
    if parent == ".":
        return []
    return [parent[:i] for i, char in enumerate(parent) if char == "/"] + [parent]


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
        """Compile like patternmatcher.New; raises ValueError where New fails.

        Like New, this checks the glob syntax only.  A pattern whose regexp Go
        would reject makes match() raise when that pattern has to be tried.
        """
        compiled = []
        for raw in patterns:
            text = go_trim_space(raw)
            if not text:
                continue
            # New cleans before looking for "!", so "!./a" stays "./a".
            text = go_clean(text)
            exception = text.startswith("!")
            if exception:
                if text == "!":
                    raise ValueError('illegal exclusion pattern: "!"')
                text = text[1:]
            filepath_match(text, ".")  # New's syntax check, as lazy as Go's
            matches = _path_predicate(text)
            # A pattern Go's regexp rejects must be tried on every path, to fail there.
            prefix = "" if isinstance(matches, _RejectedPattern) else _literal_prefix(text)
            compiled.append(_Pattern(text, exception, matches, prefix))
        self._compiled = tuple(compiled)
        # Flat rows for the hot loop: (bit in MatchState.hits, exception?, test).
        self._table = tuple((1 << i, p.exception, p.matches) for i, p in enumerate(compiled))
        self._prefixes = tuple((1 << i, p.prefix) for i, p in enumerate(compiled))
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
        does for top-level entries.  Raises ValueError when it has to try a
        pattern whose regexp Go rejects, as patternmatcher does.
        """
        inherited = parent.hits if parent is not None else 0
        ancestors = _ancestors(rel_path) if parent is None else []
        excluded = False
        hits = 0
        for bit, exception, matches in self._table:
            if not inherited & bit:
                # An include pattern cannot change an excluded path, nor an
                # exception an included one, so they are not even tried; the
                # skipped pattern is then not remembered for the children.
                if exception != excluded:
                    continue
                if not (matches(rel_path) or (ancestors and any(map(matches, ancestors)))):
                    continue
            hits |= bit
            excluded = not exception
        return MatchState(excluded, hits)

    def entries_state(self, rel_dir: str, state: MatchState) -> MatchState | None:
        """The state match() gives every entry of the directory rel_dir (whose
        state is `state`) when no pattern that could change it can match below
        rel_dir; None when entries must be matched one by one.

        A deep folder of a tree whose patterns name a few top-level paths is
        answered once instead of once per entry.
        """
        dir_slash = rel_dir + "/" if rel_dir else ""
        for bit, prefix in self._prefixes:
            if not state.hits & bit and (prefix.startswith(dir_slash) or dir_slash.startswith(prefix)):
                return None
        # Only the inherited patterns apply, and they need no test.
        excluded = False
        for bit, exception, _ in self._table:
            if state.hits & bit:
                excluded = not exception
        return state if excluded == state.excluded else MatchState(excluded, state.hits)

    def excluded(self, rel_path: str, parent_excluded: bool = False) -> bool:
        """Is rel_path left out of the context, given its directory's answer?

        parent_excluded is the answer for rel_path's directory (False for a
        top-level entry).  With exception patterns a bool is not enough state
        (see match), so the answer is then worked out from the ancestors.
        """
        if self._has_exceptions:
            return self.excluded_full(rel_path)
        if parent_excluded:
            return True
        for _, _, matches in self._table:
            if matches(rel_path):
                return True
        return False

    def excluded_full(self, rel_path: str) -> bool:
        """The answer BuildKit's walk gives for rel_path, with no parent result."""
        return self.walk_state(rel_path).excluded

    def walk_state(self, rel_path: str) -> MatchState:
        """The state BuildKit's walk reaches rel_path with: each ancestor
        matched in turn, passing its state down."""
        state = None
        for path in _ancestors(rel_path):
            state = self.match(path, state)
        return self.match(rel_path, state)

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
    pattern = go_trim_space(line)
    if not pattern:
        return None
    invert = pattern.startswith("!")
    if invert:
        pattern = go_trim_space(pattern[1:])
    if pattern:  # a lone "!" is kept; patternmatcher.New rejects it
        pattern = go_clean(pattern)
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
    patterns: list[str] = []
    for number, line in enumerate(lines, start=1):
        if len(patterns) == MAX_IGNORE_PATTERNS:
            raise IgnoreFileError(number, f"more than {MAX_IGNORE_PATTERNS} patterns, the most ctxwatch reads")
        try:
            if len(line.encode("utf-8", "surrogateescape")) >= _MAX_LINE_BYTES:
                raise ValueError("line too long")
            body = line.removeprefix("\ufeff") if number == 1 else line
            pattern = _ignore_line(body.removesuffix("\r"))
            if pattern is not None:
                # BuildKit hands the list to patternmatcher.New, which fails the
                # build on these; report them here with their line.
                PathMatcher([pattern])
                patterns.append(pattern)
        except ValueError as exc:
            raise IgnoreFileError(number, str(exc)) from None
    return patterns
