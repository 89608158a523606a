"""Tests for ctxwatchd.dockerfile.parser against BuildKit's own parser cases.

The cases come from moby/buildkit v0.32.2, frontend/dockerfile/parser, plus
282 real Dockerfiles with the dump BuildKit printed for them; see
shared/reference/buildkit-parser/README.md and real-dockerfiles/README.md.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from ctxwatchd.dockerfile.parser import DockerfileSyntaxError, Heredoc, dump, parse

REFERENCE = Path(__file__).resolve().parent / "data" / "reference"
POSITIVE = REFERENCE / "buildkit-parser" / "testfiles"
NEGATIVE = REFERENCE / "buildkit-parser" / "testfiles-negative"
REAL = REFERENCE / "real-dockerfiles"


def _case_dirs(root: Path, pattern: str) -> list[Path]:
    return sorted(path.parent for path in root.glob(pattern))


def _params(root: Path, pattern: str) -> list:
    dirs = _case_dirs(root, pattern)
    # A missing reference folder must fail the run, not leave an empty (skipped) set.
    return [pytest.param(d, id=str(d.relative_to(root))) for d in dirs] or [
        pytest.param(None, id=f"missing-{root.name}")
    ]


def _require(case: Path | None) -> Path:
    if case is None:
        pytest.fail(f"reference cases not found under {REFERENCE}")
    return case


def _assert_dump_matches(case: Path) -> None:
    expected = (case / "result").read_bytes()
    parsed = parse((case / "Dockerfile").read_bytes())
    assert dump(parsed).encode("utf-8") == expected


@pytest.mark.parametrize("case", _params(POSITIVE, "*/Dockerfile"))
def test_buildkit_positive_case(case: Path | None) -> None:
    _assert_dump_matches(_require(case))


@pytest.mark.parametrize("case", _params(NEGATIVE, "*/Dockerfile"))
def test_buildkit_negative_case(case: Path | None) -> None:
    with pytest.raises(DockerfileSyntaxError):
        parse((_require(case) / "Dockerfile").read_bytes())


@pytest.mark.parametrize("case", _params(REAL, "*/*/Dockerfile"))
def test_real_dockerfile(case: Path | None) -> None:
    _assert_dump_matches(_require(case))


# --- line numbers and original text -------------------------------------------


def test_lines_of_continuations_comments_and_blank_lines() -> None:
    parsed = parse("FROM a\n\nRUN echo \\\n  # gone\n\n  hi\nCMD x\n")
    run, cmd = parsed.instructions[1:]
    assert (run.start_line, run.end_line) == (3, 6)
    assert (cmd.start_line, cmd.end_line) == (7, 7)
    assert run.args == ("echo   hi",)
    assert parsed.warnings == ("line 6: Empty continuation line found in: RUN echo   hi",)


def test_original_joins_continuations_without_the_escape() -> None:
    parsed = parse("FROM a\nRUN  --mount=type=cache,target=/c \\\n    make  \\  \n  all\n")
    run = parsed.instructions[1]
    assert run.original == "RUN  --mount=type=cache,target=/c     make    all"
    assert run.flags == ("--mount=type=cache,target=/c",)
    assert run.args == ("make    all",)


def test_heredoc_lines_content_and_quoting() -> None:
    text = "FROM a\nRUN <<EOF cat\necho $HOME\nEOF\nCOPY <<-'A' <<B /dst/\n\tone\n\t\tA-body\n\tA\ntwo\nB\nRUN x\n"
    run, copy, last = parse(text).instructions[1:]
    assert (run.start_line, run.end_line) == (2, 4)
    assert run.heredocs == (Heredoc("EOF", "echo $HOME\n", expand=True, chomp=False),)
    assert (copy.start_line, copy.end_line) == (5, 10)
    assert copy.heredocs == (
        Heredoc("A", "one\nA-body\n", expand=False, chomp=True),
        Heredoc("B", "two\n", expand=True, chomp=False),
    )
    assert copy.args == ("<<-'A'", "<<B", "/dst/")
    assert (last.start_line, last.end_line) == (11, 11)


def test_heredocs_only_on_run_copy_add_in_shell_form() -> None:
    parsed = parse('FROM a\nCMD <<EOF\nRUN ["cat", "<<EOF"]\nEOF\n')
    assert [i.keyword for i in parsed.instructions] == ["from", "cmd", "run", "eof"]
    assert all(not i.heredocs for i in parsed.instructions)


def test_line_with_unbalanced_quote_has_no_heredoc() -> None:
    # BuildKit swallows the lexer error, so the body lines become instructions.
    parsed = parse("FROM a\nRUN echo don't <<EOF\nEOF\n")
    assert [i.keyword for i in parsed.instructions] == ["from", "run", "eof"]


def test_onbuild_keeps_nested_instruction_and_its_heredoc() -> None:
    onbuild = parse("FROM a\nONBUILD --x COPY <<EOF /f\nhi\nEOF\n").instructions[1]
    assert onbuild.flags == ("--x",)
    assert onbuild.next is not None and onbuild.next.keyword == "copy"
    assert onbuild.next.original == "COPY <<EOF /f"
    assert onbuild.heredocs == (Heredoc("EOF", "hi\n", expand=True, chomp=False),)
    assert onbuild.end_line == 4


# --- directives, escape and encodings ----------------------------------------


def test_escape_directive_switches_continuation_to_backtick() -> None:
    parsed = parse("# Escape = `\n# syntax=docker/dockerfile:1\nFROM a\nRUN dir c:\\ `\n  && echo\n")
    assert parsed.escape == "`"
    assert parsed.directives == {"escape": "`", "syntax": "docker/dockerfile:1"}
    assert parsed.instructions[1].args == ("dir c:\\   && echo",)


def test_directives_stop_at_first_other_line() -> None:
    parsed = parse("# a comment\n# escape=`\nFROM a \\\n  b\n")
    assert parsed.directives == {}
    assert parsed.escape == "\\"
    assert parsed.instructions[0].args == ("a", "b")


def test_crlf_bom_and_invalid_utf8_print_like_go() -> None:
    parsed = parse(b"\xef\xbb\xbfFROM a\r\nRUN echo \xff \\\r\n  done\r\n")
    assert dump(parsed) == '(from "a")\n(run "echo \\xff   done")\n'


# --- errors name their line ----------------------------------------------------


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("FROM a\nRUN <<EOF\nbody\n", 2, "unterminated heredoc"),
        ("FROM a\n\nENV PATH\n", 3, "ENV must have two arguments"),
        ("FROM a\nLABEL a=b c\n", 2, 'Syntax error - can\'t find = in "c". Must be of the form: name=value'),
        ("# escape=`\n# ESCAPE=\\\nFROM a\n", 2, "only one escape parser directive can be used"),
        ("# escape=x\nFROM a\n", 1, "invalid escape token 'x' does not match ` or \\"),
        (
            'FROM a\nCMD \\\n [ "a", [1] ]\n',
            2,
            "when using JSON array syntax, arrays must be comprised of strings only",
        ),
        ("# only\n\n# comments\n", 3, "file with no instructions"),
    ],
)
def test_error_names_line(text: str, line: int, message: str) -> None:
    with pytest.raises(DockerfileSyntaxError) as caught:
        parse(text)
    assert (caught.value.line, caught.value.message) == (line, message)
    assert str(caught.value) == f"line {line}: {message}"


def test_unknown_keyword_is_kept_with_flags() -> None:
    parsed = parse("FROM a\nFROBNICATE --x=1 foo bar\n")
    assert dump(parsed) == '(from "a")\n(frobnicate ["--x=1"] "")\n'
