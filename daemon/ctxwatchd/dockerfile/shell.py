"""Shell-word expansion as done by BuildKit's Dockerfile frontend (``shell.Lex``).

BuildKit expands ``$VAR`` references in Dockerfile instructions with its own
small lexer, not with a real shell.  Predicting cache keys needs the exact same
results, including BuildKit's quirks, so this module follows its rules (as of
moby/buildkit v0.32.2, frontend/dockerfile/shell) rather than POSIX sh:

* ``$name``/``${name}``: a name is letters, digits and ``_``; a leading digit
  reads a run of digits (``$001``); one of ``@*#?-$!0`` is a name on its own.
  A ``$`` followed by none of these stays literal.
* ``${name<op>word}`` with ``-``, ``+``, ``?`` (optionally after ``:``),
  ``#``, ``##``, ``%``, ``%%`` and ``/pattern/repl``, ``//pattern/repl``.
  Patterns know ``*``, ``?`` and the escapes ``\\*``, ``\\?``, ``\\\\``.
* Single quotes are literal; in double quotes only ``$``, ``"`` and the escape
  character itself can be escaped.  The escape character is ``\\`` or a
  backtick (Dockerfile ``# escape=`` directive).

The same lexer, with no variables set and unset ones kept as written, splits
a Dockerfile line into words for the parser's heredoc detection
(``words_as_written``), as BuildKit's parser does with its ``shell.Lex``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from ..goregexp import GoRegexp
from ..gostrings import GO_SPACE
from ..limits import MAX_EXPANSION_CHARS

_TOO_LONG = f"expands to more than {MAX_EXPANSION_CHARS} characters, the most ctxwatch expands"

__all__ = ["Expansion", "ShellExpansionError", "expand_word", "expand_words", "words_as_written"]


class ShellExpansionError(ValueError):
    """Expansion failed (e.g. unterminated quote, ${V:?msg} with V unset); str() says why."""


@dataclass(frozen=True)
class Expansion:
    """Result of an expansion, plus which variables it looked up."""

    words: tuple[str, ...]  # for expand_word: exactly one element
    used: frozenset[str]  # variable names referenced and found in env
    unset: frozenset[str]  # variable names referenced but not in env


def expand_word(
    word: str, env: Mapping[str, str], escape: str = "\\", *, raw_quotes: bool = False, keep_unset: bool = False
) -> Expansion:
    """Expand one word like BuildKit's ProcessWord: quotes removed, one string.
    `raw_quotes` and `keep_unset` as for _Lexer (BuildKit prints a RUN in its progress with both)."""
    result, _, lexer = _run(word, env, escape, raw_quotes, keep_unset)
    return lexer.expansion((result,))


def expand_words(line: str, env: Mapping[str, str], escape: str = "\\") -> Expansion:
    """Expand like BuildKit's ProcessWords: split on unquoted (or expanded) whitespace."""
    _, words, lexer = _run(line, env, escape)
    return lexer.expansion(tuple(words))


def words_as_written(line: str, raw_quotes: bool, raw_escapes: bool) -> list[str]:
    """BuildKit's ProcessWords with no variables and SkipUnsetEnv, the escape a
    backslash: words split as the shell would, `$x` and `${x...}` kept as
    written (with `raw_quotes` the quotes too, with `raw_escapes` the escapes).
    ShellExpansionError when the line does not lex."""
    lexer = _Lexer(line.removeprefix(_BOM), {}, "\\", raw_quotes=raw_quotes, keep_unset=True)
    try:
        return lexer.scan(stop=None, raw_escapes=raw_escapes)[1]
    except RecursionError:
        raise ShellExpansionError("nesting too deep") from None


# POSIX special parameters; BuildKit accepts each as a one-character name.
_SPECIAL_PARAMS = frozenset("@*#?-$!0")
# Whitespace as Go's unicode.IsSpace sees it (Python's str.isspace() also
# counts the separators U+001C..U+001F, which Go does not).
_SPACES = frozenset(GO_SPACE)
# Blanks BuildKit keeps glued to a ``<<`` (heredoc marker) in ProcessWords.
_HEREDOC_BLANKS = frozenset("\t\r ")
# Go's text/scanner drops a byte-order mark at the very start of its input.
_BOM = "\ufeff"


def _is_digit(ch: str) -> bool:
    return ch.isdecimal()  # Unicode category Nd, like Go's unicode.IsDigit


def _is_name_char(ch: str) -> bool:
    return ch.isalpha() or _is_digit(ch) or ch == "_"


def _run(
    text: str, env: Mapping[str, str], escape: str, raw_quotes: bool = False, keep_unset: bool = False
) -> tuple[str, list[str], _Lexer]:
    if escape not in ("\\", "`"):
        raise ValueError(f"escape must be a backslash or a backtick, not {escape!r}")
    lexer = _Lexer(text.removeprefix(_BOM), env, escape, raw_quotes=raw_quotes, keep_unset=keep_unset)
    try:
        result, words = lexer.scan(stop=None, raw_escapes=False)
    except ShellExpansionError as err:
        raise ShellExpansionError(f"failed to process {text!r}: {err}") from None
    except RecursionError:
        # Go has no practical nesting limit; Python does.  Fail cleanly.
        raise ShellExpansionError(f"failed to process {text!r}: nesting too deep") from None
    return result, words, lexer


class _WordSplitter:
    """Splits scanned text into words the way BuildKit's ProcessWords does.

    Only text from unquoted characters and ``$`` expansions splits on
    whitespace; quoted text, escaped characters and ``<<`` markers are kept
    whole.  Empty words (e.g. from a lone ``''``) are dropped, as in BuildKit.
    """

    def __init__(self, pending: list[str]) -> None:
        self.pending = pending  # the unfinished word, shared: see _Lexer
        self.words: list[str] = []

    def add_kept(self, text: str) -> None:
        if text:
            self.pending.append(text)

    def add_splittable(self, text: str) -> None:
        for ch in text:
            if ch not in _SPACES:
                self.pending.append(ch)
            elif self.pending:
                self._finish_word()

    def finish(self) -> list[str]:
        if self.pending:
            self._finish_word()
        return self.words

    def _finish_word(self) -> None:
        self.words.append("".join(self.pending))
        self.pending.clear()


class _Lexer:
    """One expansion run: a cursor over the text plus the variables looked up.

    `raw_quotes` keeps quote characters in the result (BuildKit's RawQuotes);
    `keep_unset` leaves a reference to an unset variable as written (SkipUnsetEnv).
    """

    def __init__(
        self, text: str, env: Mapping[str, str], escape: str, raw_quotes: bool = False, keep_unset: bool = False
    ) -> None:
        self.text = text
        self.pos = 0
        self.env = env
        self.escape = escape
        self.raw_quotes = raw_quotes
        self.keep_unset = keep_unset
        self.used: set[str] = set()
        self.unset: set[str] = set()
        self.expanded = 0  # characters substituted so far
        # Inside ${...} operands, patterns and replacements keep their escape
        # characters, because the pattern matcher interprets them later.
        self.raw_escapes = False
        # Like BuildKit, all nested scans share one unfinished-word buffer.  A
        # ${...} operand scan finishes its own words, emptying the buffer, so
        # a word begun before it is lost in ProcessWords ("a${X:-y}b" -> "yb").
        self._pending: list[str] = []

    def expansion(self, words: tuple[str, ...]) -> Expansion:
        return Expansion(words, frozenset(self.used), frozenset(self.unset))

    # -- cursor ---------------------------------------------------------

    def peek(self) -> str | None:
        return self.text[self.pos] if self.pos < len(self.text) else None

    def take(self) -> str | None:
        ch = self.peek()
        if ch is not None:
            self.pos += 1
        return ch

    # -- scanning ---------------------------------------------------------

    def scan(self, stop: str | None, raw_escapes: bool) -> tuple[str, list[str]]:
        """Scan up to and past ``stop`` (None: end of text); return text and words."""
        outer_raw_escapes, self.raw_escapes = self.raw_escapes, raw_escapes
        try:
            return self._scan(stop)
        finally:
            self.raw_escapes = outer_raw_escapes

    def _scan(self, stop: str | None) -> tuple[str, list[str]]:
        out: list[str] = []
        words = _WordSplitter(self._pending)
        while (ch := self.peek()) is not None:
            if ch == stop:
                self.pos += 1
                return "".join(out), words.finish()
            if ch == "$":
                text = self.dollar()
                words.add_splittable(text)
            elif ch == "'":
                text = self.single_quoted()
                words.add_kept(text)
            elif ch == '"':
                text = self.double_quoted()
                words.add_kept(text)
            elif ch == "<":
                text = self.heredoc_marker()
                words.add_kept(text)
            elif ch == self.escape:
                self.pos += 1
                if self.raw_escapes:
                    out.append(ch)
                    words.add_kept(ch)
                escaped = self.take()
                if escaped is None:  # a trailing escape character is dropped
                    break
                text = escaped
                words.add_kept(text)
            else:
                self.pos += 1
                text = ch
                words.add_splittable(text)
            out.append(text)
        if stop is not None:
            raise ShellExpansionError(f"unexpected end of statement while looking for matching {stop}")
        return "".join(out), words.finish()

    def single_quoted(self) -> str:
        self.pos += 1
        end = self.text.find("'", self.pos)
        if end < 0:
            raise ShellExpansionError("unexpected end of statement while looking for matching single-quote")
        text, self.pos = self.text[self.pos : end], end + 1
        return f"'{text}'" if self.raw_quotes else text

    def double_quoted(self) -> str:
        self.pos += 1
        out: list[str] = ['"'] if self.raw_quotes else []
        while (ch := self.peek()) != '"':
            if ch is None:
                raise ShellExpansionError("unexpected end of statement while looking for matching double-quote")
            if ch == "$":
                out.append(self.dollar())
                continue
            self.pos += 1
            if ch == self.escape:
                if self.raw_escapes:
                    out.append(ch)
                # Other escapes are literal here, as in sh.
                if self.peek() in ('"', "$", self.escape):
                    ch = self.text[self.pos]
                    self.pos += 1
            out.append(ch)
        self.pos += 1
        return "".join(out + (['"'] if self.raw_quotes else []))

    def heredoc_marker(self) -> str:
        self.pos += 1
        if self.peek() != "<":
            return "<"
        start = self.pos
        self.pos += 1
        while self.peek() in _HEREDOC_BLANKS:
            self.pos += 1
        return self.text[start - 1 : self.pos]

    # -- parameters -------------------------------------------------------

    def lookup(self, name: str) -> str | None:
        """Value of ``name``, or None when unset; records the reference."""
        if name in self.env:
            self.used.add(name)
            return self.env[name]
        self.unset.add(name)
        return None

    def name(self) -> str:
        start = self.pos
        first = self.peek()
        if first is None:
            return ""
        if _is_digit(first):
            keep = _is_digit  # positional parameter: digits only
        elif first in _SPECIAL_PARAMS:
            self.pos += 1
            return first
        else:
            keep = _is_name_char
        while (ch := self.peek()) is not None and keep(ch):
            self.pos += 1
        return self.text[start : self.pos]

    def dollar(self) -> str:
        """One substitution; ShellExpansionError past the expansion limit."""
        text = self._dollar()
        if self.keep_unset:
            return text  # with no variables, nothing grows: the text is as written
        self.expanded += len(text)
        if self.expanded > MAX_EXPANSION_CHARS:
            raise ShellExpansionError(_TOO_LONG)
        return text

    def _dollar(self) -> str:
        self.pos += 1
        if self.peek() != "{":
            name = self.name()
            if not name:
                return "$"
            value = self.lookup(name)
            return f"${name}" if value is None and self.keep_unset else value or ""
        self.pos += 1
        first = self.peek()
        if first is None:
            raise ShellExpansionError("syntax error: missing '}'")
        if first in "{}:":
            raise ShellExpansionError("syntax error: bad substitution")
        name = self.name()
        op = self.take()
        if op is None:
            raise ShellExpansionError("syntax error: missing '}'")
        if op == "}":
            value = self.lookup(name)
            return f"${{{name}}}" if value is None and self.keep_unset else value or ""
        if op == "/":
            return self.replace(name)
        if op == ":":
            return self.modifier(name, self.take(), null_is_unset=True)
        if op in "+-?#%":
            return self.modifier(name, op, null_is_unset=False)
        raise ShellExpansionError(f"unsupported modifier ({op}) in substitution")

    def operand(self, stop: str, raw_escapes: bool, missing: str) -> str:
        """Scan a ${...} operand; running out of text means ``missing``."""
        try:
            text, _ = self.scan(stop, raw_escapes)
        except ShellExpansionError as err:
            if self.peek() is None:
                raise ShellExpansionError(f"syntax error: missing {missing}") from err
            raise
        return text

    def modifier(self, name: str, op: str | None, null_is_unset: bool) -> str:
        label = (":" if null_is_unset else "") + (op or "")
        is_pattern = op in ("#", "%")
        if null_is_unset and is_pattern:
            raise ShellExpansionError(f"unsupported modifier ({label}) in substitution")
        word = self.operand("}", raw_escapes=is_pattern, missing="'}'")
        value = self.lookup(name)
        if value is None and self.keep_unset:  # before the modifier is checked, as BuildKit does
            return f"${{{name}{label}{word}}}"
        # With ':' an empty value counts as unset.
        missing = value is None or (null_is_unset and value == "")
        if op == "-":
            return word if missing else (value or "")
        if op == "+":
            return "" if missing else word
        if op == "?":
            if missing:
                default = "is not allowed to be " + ("unset" if value is None else "empty")
                raise ShellExpansionError(f"{name}: {word or default}")
            return value or ""
        if op == "#" or op == "%":
            # Doubling the operator (## or %%) removes the longest match.
            longest = word.startswith(op)
            pattern = word[1:] if longest else word
            trim = _trim_suffix if op == "%" else _trim_prefix
            return trim(value or "", pattern, longest)
        raise ShellExpansionError(f"unsupported modifier ({label}) in substitution")

    def replace(self, name: str) -> str:
        replace_all = self.peek() == "/"
        if replace_all:
            self.pos += 1
        pattern = self.operand("/", raw_escapes=True, missing="'/' in ${}")
        replacement = self.operand("}", raw_escapes=True, missing="'}'")
        found = self.lookup(name)
        if found is None and self.keep_unset:
            return f"${{{name}/{pattern}/{replacement}}}"  # BuildKit writes `//` back as one slash
        value = found or ""
        regex = _pattern_regex(pattern, greedy=True)
        if replace_all:
            return _go_replace_all(regex, value, replacement)
        span = regex.find(value)
        if span is None:
            return value
        return value[: span[0]] + replacement + value[span[1] :]


# -- patterns ---------------------------------------------------------------


def _pattern_regex(pattern: str, greedy: bool) -> GoRegexp:
    """Compile a ${V#pattern} style pattern: ``*``, ``?`` and ``\\`` escapes only.

    BuildKit makes a Go regexp of it, matched in linear time; so is this one
    (Python's re would backtrack exponentially on ``*a*a*a*a*a*x``).
    """
    parts: list[str] = []
    chars = iter(pattern.removeprefix(_BOM))
    for ch in chars:
        if ch == "*":
            parts.append(".*" if greedy else ".*?")
        elif ch == "?":
            parts.append(".")
        elif ch == "\\":
            escaped = next(chars, None)
            # "\}" and "\/" only kept the ${...} open; the escape is not part
            # of the pattern.
            if escaped not in ("}", "/", "*", "?", "\\"):
                raise ShellExpansionError(
                    f"invalid pattern ({pattern}) in substitution: invalid escape '\\{escaped or ''}'"
                )
            parts.append(_go_quote_meta(escaped))
        else:
            parts.append(_go_quote_meta(ch))
    return GoRegexp("".join(parts))


def _go_quote_meta(ch: str) -> str:
    """Go's regexp.QuoteMeta of one character; an undecodable byte reads as U+FFFD, as Go's scanner gives it."""
    if "\udc80" <= ch <= "\udcff":
        return "\ufffd"
    return "\\" + ch if ch in _GO_META else ch


_GO_META = frozenset("\\.+*?()|[]{}^$")


def _trim_prefix(value: str, pattern: str, longest: bool) -> str:
    span = _pattern_regex(pattern, greedy=longest).find(value, anchored=True)
    return value[span[1] :] if span else value


def _trim_suffix(value: str, pattern: str, longest: bool) -> str:
    # A regex finds the leftmost match, so search the reversed value with the
    # reversed pattern (keeping each "\x" escape pair in order).
    tokens = re.findall(r"\\.|.", pattern, flags=re.DOTALL)
    reversed_pattern = "".join(reversed(tokens))
    return _trim_prefix(value[::-1], reversed_pattern, longest)[::-1]


def _go_replace_all(regex: GoRegexp, value: str, template: str) -> str:
    """Go's Regexp.ReplaceAllString, whose empty-match rules differ from re.sub."""
    out: list[str] = []
    last_end = pos = produced = 0
    while pos <= len(value) and (span := regex.find(value, pos)):
        start, end = span
        out.append(value[last_end:start])
        # No replacement for an empty match right after the previous match.
        if end > last_end or start == 0:
            out.append(_go_expand_template(template, value[start:end]))
            produced += len(out[-1])
            if produced > MAX_EXPANSION_CHARS:
                raise ShellExpansionError(_TOO_LONG)
        last_end = end
        pos = max(pos + 1, end)
    out.append(value[last_end:])
    return "".join(out)


def _go_expand_template(template: str, matched: str) -> str:
    """Go's Regexp.Expand for a regex with no groups: ``$0``/``${0}`` is the
    match, ``$$`` is ``$``, other ``$name``/``${name}`` are empty, and a ``$``
    starting no reference stays literal."""
    out: list[str] = []
    pos = 0
    while (dollar := template.find("$", pos)) >= 0:
        out.append(template[pos:dollar])
        pos = dollar + 1
        if template.startswith("$", pos):
            out.append("$")
            pos += 1
            continue
        braced = template.startswith("{", pos)
        end = start = pos + braced
        while end < len(template) and _is_name_char(template[end]):
            end += 1
        if end == start or (braced and not template.startswith("}", end)):
            out.append("$")
            continue
        if template[start:end] == "0":
            out.append(matched)
        pos = end + braced
    out.append(template[pos:])
    return "".join(out)
