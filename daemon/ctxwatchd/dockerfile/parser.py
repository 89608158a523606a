"""Dockerfile parser that reproduces BuildKit's `frontend/dockerfile/parser`.

The goal is agreement with BuildKit, quirks included: every instruction is
split, flagged and argument-parsed the way BuildKit's parser does it, and
`dump()` prints BuildKit's `Node.Dump()` format.  Text is handled the way Go
sees bytes: invalid UTF-8 is kept as surrogate escapes, so it survives and
prints as `\\xNN` like Go's `%q`.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import NamedTuple

from ..budget import check
from ..gostrings import GO_SPACE, byte_view, from_byte_view, go_lower, go_quote, go_trim_space, valid_runes
from ..limits import MAX_INSTRUCTIONS
from .shell import ShellExpansionError, words_as_written

__all__ = ["DockerfileSyntaxError", "Heredoc", "Instruction", "ParsedDockerfile", "Span", "dump", "parse"]


class DockerfileSyntaxError(ValueError):
    """A Dockerfile that BuildKit's parser refuses; `line` is 1-based (0 if unknown)."""

    def __init__(self, line: int, message: str) -> None:
        super().__init__(f"line {line}: {message}")
        self.line = line
        self.message = message


@dataclass(frozen=True)
class Heredoc:
    """One heredoc body attached to an instruction."""

    name: str
    content: str
    expand: bool
    chomp: bool


class Span(NamedTuple):
    """Where an instruction is written: lines 1-based, columns 0-based in
    characters (code points); the end is just after its last character."""

    start_line: int
    start_column: int
    end_line: int
    end_column: int


@dataclass(frozen=True)
class Instruction:
    """One parsed instruction (a child of BuildKit's root node)."""

    keyword: str
    args: tuple[str, ...]
    flags: tuple[str, ...]
    original: str
    json_form: bool
    heredocs: tuple[Heredoc, ...]
    start_line: int
    end_line: int
    next: Instruction | None = None
    start_column: int = 0
    end_column: int = 0  # on end_line, after the last character (heredoc terminator included)

    @property
    def span(self) -> Span:
        return Span(self.start_line, self.start_column, self.end_line, self.end_column)


@dataclass(frozen=True)
class ParsedDockerfile:
    """Everything BuildKit's parser returns for one Dockerfile."""

    instructions: tuple[Instruction, ...]
    directives: dict[str, str]
    escape: str
    warnings: tuple[str, ...]


class _Invalid(Exception):
    """A parse failure whose line the caller knows."""


# unicode.IsSpace applied to single bytes, as BuildKit's byte-wise scanners do.
_BYTE_SPACE = "\t\n\v\f\r \x85\xa0"
_WHITESPACE = re.compile(r"[\t\v\f\r ]+")
# In the next two, [\t\n\f\r ] is Go's regexp \s (no \v).
_DIRECTIVE = re.compile(r"([a-zA-Z][a-zA-Z0-9]*)[\t\n\f\r ]*=[\t\n\f\r ]*(.+?)[\t\n\f\r ]*")
_HEREDOC_WORD = re.compile(r"[0-9]*<<(-?)[\t\n\f\r ]*([^<]*)")
_LEADING_TABS = re.compile(r"^\t+", re.MULTILINE)
_KNOWN_DIRECTIVES = ("syntax", "escape", "check")
_HEREDOC_KEYWORDS = ("add", "copy", "run")
_MAX_LINE_BYTES = 65535  # bufio.Scanner's token limit, minus the newline
_NOT_STRING_ARRAY = "when using JSON array syntax, arrays must be comprised of strings only"


# --- lines and directives --------------------------------------------------


class _Lines:
    """BuildKit's line scanner: lines keep their '\\n'; an over-long line ends the input."""

    def __init__(self, text: str) -> None:
        parts = text.split("\n")
        self._lines = [part + "\n" for part in parts[:-1]] + ([parts[-1]] if parts[-1] else [])
        self.number = 0  # 1-based number of the line last returned
        self.last = ""  # the line last returned
        self.too_long = 0

    def next(self) -> str | None:
        if self.too_long or self.number == len(self._lines):
            return None
        line = self._lines[self.number]
        body = line.removesuffix("\n")
        if len(body) * 4 > _MAX_LINE_BYTES and len(body.encode("utf-8", "surrogateescape")) > _MAX_LINE_BYTES:
            self.too_long = self.number + 1
            return None
        self.number += 1
        self.last = line
        return line


class _Directives:
    """Parser directives: only comment lines at the very top, each name once."""

    def __init__(self) -> None:
        self.values: dict[str, str] = {}
        self.escape = "\\"
        self._done = False

    def feed(self, line: str) -> None:
        if self._done:
            return
        match = _DIRECTIVE.fullmatch(line[1:].lstrip(GO_SPACE)) if line.startswith("#") else None
        name = match[1].lower() if match else ""
        if match is None or name not in _KNOWN_DIRECTIVES:
            self._done = True  # any other line ends the directive block for good
            return
        if name in self.values:
            raise _Invalid(f"only one {name} parser directive can be used")
        self.values[name] = match[2]
        if name == "escape":
            if match[2] not in ("\\", "`"):
                raise _Invalid(f"invalid escape token '{match[2]}' does not match ` or \\")
            self.escape = match[2]


def _is_comment(line: str) -> bool:
    return line.lstrip(GO_SPACE).startswith("#")


def _trim_continuation(line: str, escape: str) -> tuple[str, bool]:
    """Drop a trailing escape (plus blanks after it); True if the instruction goes on."""
    body = line.rstrip(" \t")
    # An escaped escape ("\\\\") at the end is text, not a continuation.
    if body.endswith(escape) and (len(body) == 1 or body[-2] != escape):
        return body[:-1], True
    return line, False


# --- argument parsers --------------------------------------------------------


def _extract_flags(text: str, escape: str) -> tuple[list[str], str]:
    """Leading `--flag` words (quotes and escapes removed) and the rest of the line.

    BuildKit walks bytes here, so multi-byte characters are seen byte by byte.
    """
    view = byte_view(text)
    flags: list[str] = []
    word: list[str] = []
    quote = ""
    in_word = False
    pos = 0
    while pos < len(view):
        ch = view[pos]
        if not in_word:
            if ch in _BYTE_SPACE:
                pos += 1
                continue
            if not view.startswith("--", pos):
                return flags, from_byte_view(view[pos:])
            in_word = True
        if ch == escape:
            word.append(view[pos + 1 : pos + 2])  # an escape as the last byte is dropped
            pos += 2
            continue
        if quote:
            if ch == quote:
                quote = ""
            else:
                word.append(ch)
        elif ch in _BYTE_SPACE:
            if "".join(word) == "--":  # "--" ends the flags
                return flags, from_byte_view(view[pos:])
            flags.append("".join(word))
            word, in_word = [], False
        elif ch in "'\"":
            quote = ch
        else:
            word.append(ch)
        pos += 1
    if in_word and "".join(word) != "--":
        flags.append("".join(word))
    return flags, ""


def _parse_words(text: str, escape: str) -> list[str]:
    """Split on blanks, keeping quotes and escapes in the words."""
    text = valid_runes(text)
    words: list[str] = []
    word: list[str] = []
    quote = ""
    pos = 0
    while pos < len(text):
        ch = text[pos]
        pos += 1
        if ch == escape and quote != "'":
            if pos < len(text):  # an escape as the last char is dropped
                word += [ch, text[pos]]
                pos += 1
            continue
        if not quote and ch in GO_SPACE:
            if word:
                words.append("".join(word))
            word = []
            continue
        if quote == ch:
            quote = ""
        elif not quote and ch in "'\"":
            quote = ch
        word.append(ch)
    if word:
        words.append("".join(word))
    return words


def _parse_json(text: str) -> tuple[str, ...] | None:
    """A JSON array of strings, None if the text is not JSON (then it is shell form)."""
    body = text.lstrip(GO_SPACE)
    if not body.startswith("["):
        return None
    try:
        values = json.loads(body, parse_constant=_reject_json, parse_float=_go_float, parse_int=_go_float)
    except ValueError:
        return None
    except RecursionError:  # only a nested (so not all-string) array gets this deep
        raise _Invalid(_NOT_STRING_ARRAY) from None
    if not all(isinstance(value, str) for value in values):
        raise _Invalid(_NOT_STRING_ARRAY)
    return tuple(valid_runes(value) for value in values)


def _reject_json(token: str) -> float:
    raise ValueError(f"{token} is not JSON")  # Python accepts NaN/Infinity, Go does not


def _go_float(token: str) -> float:
    value = float(token)
    if math.isinf(value):  # Go's decoder fails on numbers a float64 cannot hold
        raise ValueError(f"{token} is out of range")
    return value


def _maybe_json(rest: str, escape: str) -> tuple[tuple[str, ...], bool]:
    if not rest:
        return (), False
    values = _parse_json(rest)
    if values is None:
        return (rest,), False
    return values, True


def _maybe_json_list(rest: str, escape: str) -> tuple[tuple[str, ...], bool]:
    values = _parse_json(rest)
    return _split_blanks(rest, escape) if values is None else (values, True)


def _split_blanks(rest: str, escape: str) -> tuple[tuple[str, ...], bool]:
    return (tuple(_WHITESPACE.split(rest)) if rest else ()), False


def _whole(rest: str, escape: str) -> tuple[tuple[str, ...], bool]:
    return ((rest,) if rest else ()), False


def _words(rest: str, escape: str) -> tuple[tuple[str, ...], bool]:
    """ARG: each word as written (`name` or `name=value`)."""
    return tuple(_parse_words(rest, escape)), False


def _unknown(rest: str, escape: str) -> tuple[tuple[str, ...], bool]:
    # Unknown keywords are refused later, by BuildKit's instructions layer;
    # its parser keeps them with one empty argument.
    return ("",), False


_ArgParser = Callable[[str, str], tuple[tuple[str, ...], bool]]


def _key_values(keyword: str) -> _ArgParser:
    """ENV/LABEL: `name=value ...` pairs, or the old `name value` form."""

    def parse_pairs(rest: str, escape: str) -> tuple[tuple[str, ...], bool]:
        words = _parse_words(rest, escape)
        if not words:
            return (), False
        if "=" not in words[0]:  # old form: first blank splits name from value
            parts = _WHITESPACE.split(rest, maxsplit=1)
            if len(parts) < 2:
                raise _Invalid(f"{keyword} must have two arguments")
            return (parts[0], parts[1], ""), False
        args: list[str] = []
        for word in words:
            if "=" not in word:
                raise _Invalid(f"Syntax error - can't find = in {go_quote(word)}. Must be of the form: name=value")
            args += [*word.split("=", 1), "="]
        return tuple(args), False

    return parse_pairs


def _healthcheck(rest: str, escape: str) -> tuple[tuple[str, ...], bool]:
    """A type word (CMD, NONE, ...) then a command in JSON or shell form."""
    view = byte_view(rest)  # BuildKit finds the type's end byte by byte
    end = next((i for i, ch in enumerate(view) if ch in _BYTE_SPACE), len(view))
    if end == 0:
        return (), False
    command = view[end:].lstrip(_BYTE_SPACE)
    args, json_form = _maybe_json(from_byte_view(command), escape)
    return (from_byte_view(view[:end]), *args), json_form


_ARG_PARSERS: dict[str, _ArgParser] = {
    "add": _maybe_json_list,
    "arg": _words,
    "cmd": _maybe_json,
    "copy": _maybe_json_list,
    "entrypoint": _maybe_json,
    "env": _key_values("ENV"),
    "expose": _split_blanks,
    "from": _split_blanks,
    "healthcheck": _healthcheck,
    "label": _key_values("LABEL"),
    "maintainer": _whole,
    "run": _maybe_json,
    "shell": _maybe_json,
    "stopsignal": _whole,
    "user": _whole,
    "volume": _maybe_json_list,
    "workdir": _whole,
    "onbuild": _whole,  # reached only when ONBUILD has nothing after it
}


def _split_command(line: str, escape: str) -> tuple[str, tuple[str, ...], str]:
    """Lowercase keyword, flags, and the argument text after them."""
    keyword, *rest = _WHITESPACE.split(go_trim_space(line), maxsplit=1)
    flags, args_text = _extract_flags(rest[0], escape) if rest else ([], "")
    return go_lower(keyword), tuple(flags), go_trim_space(args_text)


def _parse_instruction(line: str, escape: str, start: int, end: int) -> Instruction:
    """One logical line; ONBUILD's argument text is parsed as an instruction of its own."""
    wrappers: list[tuple[tuple[str, ...], str]] = []
    keyword, flags, args_text = _split_command(line, escape)
    while keyword == "onbuild" and args_text:  # a loop: ONBUILD may be chained deeply
        wrappers.append((flags, line))
        line = args_text
        keyword, flags, args_text = _split_command(line, escape)
    args, json_form = _ARG_PARSERS.get(keyword, _unknown)(args_text, escape)
    ins = Instruction(keyword, args, flags, line, json_form, (), start, end)
    for flags, original in reversed(wrappers):
        ins = Instruction("onbuild", (), flags, original, False, (), start, end, ins)
    return ins


# --- heredocs ------------------------------------------------------------------


def _heredocs_in_line(line: str) -> list[tuple[str, bool, bool]]:
    """(name, expand, chomp) of each `<<WORD` on the line, in order."""
    try:
        words = words_as_written(valid_runes(line), raw_quotes=True, raw_escapes=True)
    except ShellExpansionError:
        return []  # BuildKit ignores lexing errors here: such a line has no heredocs
    found = []
    for word in words:
        match = _HEREDOC_WORD.fullmatch(word)
        if not match or not match[2]:
            continue
        names = _heredoc_words(match[2], raw_quotes=False)
        if len(names) != 1:
            continue
        raw_names = _heredoc_words(match[2], raw_quotes=True)
        if len(raw_names) != 1:
            raise _Invalid(f"internal lexing of heredoc produced inconsistent results: {match[2]}")
        # Quoting any part of the word (and only quotes count) turns expansion off.
        expand = _quote_count(names[0]) == _quote_count(raw_names[0])
        found.append((names[0], expand, match[1] == "-"))
    return found


def _heredoc_words(word: str, raw_quotes: bool) -> list[str]:
    try:
        return words_as_written(word, raw_quotes, raw_escapes=False)
    except ShellExpansionError as exc:  # the line lexed but its heredoc word does not: BuildKit fails the parse
        raise _Invalid(str(exc)) from None


def _quote_count(word: str) -> int:
    return word.count("'") + word.count('"')


def _can_have_heredocs(ins: Instruction) -> bool:
    target = ins.next if ins.keyword == "onbuild" and ins.next else ins
    return target.keyword in _HEREDOC_KEYWORDS and not target.json_form


def _read_heredoc(lines: _Lines, name: str, expand: bool, chomp: bool, start: int) -> Heredoc:
    body: list[str] = []
    while (raw := lines.next()) is not None:
        candidate = raw.rstrip("\r\n")
        if (candidate.lstrip("\t") if chomp else candidate) == name:
            content = "".join(body)
            return Heredoc(name, _LEADING_TABS.sub("", content) if chomp else content, expand, chomp)
        body.append(raw)
    raise DockerfileSyntaxError(start, "unterminated heredoc")


# --- the main loop ------------------------------------------------------------


def parse(text: str | bytes) -> ParsedDockerfile:
    """Parse a Dockerfile exactly as BuildKit's parser does; raises DockerfileSyntaxError."""
    if isinstance(text, str):
        text = text.encode("utf-8", "surrogatepass")
    lines = _Lines(text.decode("utf-8", "surrogateescape").removeprefix("\ufeff"))
    directives = _Directives()
    instructions: list[Instruction] = []
    warnings: list[str] = []
    while (raw := lines.next()) is not None:
        check("parsing the Dockerfile")
        first = raw.rstrip("\r\n").lstrip(GO_SPACE)
        try:
            directives.feed(first)
        except _Invalid as exc:
            raise DockerfileSyntaxError(lines.number, str(exc)) from None
        start = lines.number
        logical, more = _trim_continuation("" if _is_comment(first) else first, directives.escape)
        if not more and not logical:
            continue
        whole = raw.rstrip("\r\n")
        span = Span(start, len(whole) - len(first), start, len(whole.rstrip(GO_SPACE)))
        parts, empty_line = [logical], False
        while more and (raw := lines.next()) is not None:
            part = raw.rstrip("\r\n")
            if _is_comment(part):
                continue  # comments inside a continuation vanish
            if not part.lstrip(GO_SPACE):
                empty_line = True  # blank lines vanish too, with a warning
                continue
            span = span._replace(end_line=lines.number, end_column=len(part.rstrip(GO_SPACE)))
            part, more = _trim_continuation(part, directives.escape)
            parts.append(part)
        line = "".join(parts)
        if empty_line:
            warnings.append(f"line {lines.number}: Empty continuation line found in: {line}")
        if len(instructions) == MAX_INSTRUCTIONS:  # ctxwatch's limit, not BuildKit's: stop reading
            raise DockerfileSyntaxError(start, f"more than {MAX_INSTRUCTIONS} instructions, the most ctxwatch reads")
        instructions.append(_instruction(line, directives.escape, span, lines))
    if not instructions:
        raise DockerfileSyntaxError(lines.number, "file with no instructions")
    if lines.too_long:
        raise DockerfileSyntaxError(
            lines.too_long, f"dockerfile line greater than max allowed size of {_MAX_LINE_BYTES}"
        )
    return ParsedDockerfile(tuple(instructions), directives.values, directives.escape, tuple(warnings))


def _instruction(line: str, escape: str, span: Span, lines: _Lines) -> Instruction:
    """Parse one logical line and read the heredoc bodies that follow it.

    Like BuildKit, heredocs of `ONBUILD RUN <<EOF` belong to the ONBUILD node;
    the nested instruction keeps the lines of the logical line itself.
    """
    start = span.start_line
    try:
        ins = _parse_instruction(line, escape, start, lines.number)
        ins = replace(ins, start_column=span.start_column, end_column=span.end_column)
        # "<<" check first: most lines have none, and the lexer is the slow part.
        found = _heredocs_in_line(line) if "<<" in line and _can_have_heredocs(ins) else []
    except _Invalid as exc:
        raise DockerfileSyntaxError(start, str(exc)) from None
    if not found:
        return ins
    heredocs = tuple(_read_heredoc(lines, *doc, start) for doc in found)
    end_column = len(lines.last.rstrip("\r\n"))  # the terminator line
    return replace(ins, end_line=lines.number, end_column=end_column, heredocs=heredocs)


def dump(parsed: ParsedDockerfile) -> str:
    """BuildKit's AST dump: one `(keyword ...)` line per instruction."""
    return "".join(f"({_dump_instruction(ins)})\n" for ins in parsed.instructions)


def _dump_instruction(ins: Instruction) -> str:
    """`keyword ["flags"] "args"`; ONBUILD wraps its instruction in parentheses."""
    heads: list[str] = []
    while ins.next:  # a loop: ONBUILD may be chained deeply
        heads.append(_dump_head(ins))
        ins = ins.next
    text = go_trim_space(" ".join([_dump_head(ins), *map(go_quote, ins.args)]))
    for head in reversed(heads):
        text = f"{head} ({text})"
    return text


def _dump_head(ins: Instruction) -> str:
    if not ins.flags:
        return ins.keyword
    return f"{ins.keyword} [{' '.join(map(go_quote, ins.flags))}]"
