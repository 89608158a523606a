"""Tests for ctxwatchd.dockerfile.shell against BuildKit's own lexer tables.

The tables (envVarTest, wordsTest) come from moby/buildkit v0.32.2,
frontend/dockerfile/shell; see shared/reference/buildkit-shell/README.md.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from ctxwatchd.dockerfile.shell import (
    Expansion,
    ShellExpansionError,
    expand_word,
    expand_words,
)

REFERENCE = Path(__file__).resolve().parent / "data" / "reference" / "buildkit-shell"
ENV_VAR_TEST = REFERENCE / "envVarTest"
WORDS_TEST = REFERENCE / "wordsTest"

# The environment BuildKit's test uses for every envVarTest row.
ENV_VAR_TEST_ENV = {"PWD": "/home", "SHELL": "bash", "KOREAN": "한국어", "NULL": ""}


def _lines(path: Path) -> list[tuple[int, str]]:
    if not path.is_file():
        return []  # test_reference_tables_present fails instead
    return list(enumerate(path.read_text(encoding="utf-8").splitlines(), start=1))


def _env_var_rows() -> list:
    """envVarTest rows that run on Linux: (input, expected or None for error)."""
    rows = []
    for number, line in _lines(ENV_VAR_TEST):
        if line.startswith("#") or not line.strip():
            continue
        fields = line.strip().split("|")
        assert len(fields) == 3, f"envVarTest:{number}: malformed row {line!r}"
        platform, source, expected = (field.strip() for field in fields)
        assert platform in ("A", "U", "W"), f"envVarTest:{number}: bad platform {platform!r}"
        if platform == "W":
            continue
        rows.append(pytest.param(source, None if expected == "error" else expected, id=f"{number}:{source}"))
    return rows


def _words_rows() -> list:
    """wordsTest rows: (input, env so far, expected words or None for error)."""
    rows = []
    env: dict[str, str] = {}
    for number, line in _lines(WORDS_TEST):
        if line.startswith("#"):
            continue
        if line.startswith("ENV "):
            name, _, value = line[len("ENV ") :].lstrip(" ").partition("=")
            env = {**env, name: value}
            continue
        fields = line.split("|")
        assert len(fields) == 2, f"wordsTest:{number}: malformed row {line!r}"
        source = fields[0].strip()
        expected = fields[1].lstrip(" ").split(",")
        rows.append(
            pytest.param(source, env, None if expected == ["error"] else tuple(expected), id=f"{number}:{source}")
        )
    return rows


ENV_VAR_ROWS = _env_var_rows()
WORDS_ROWS = _words_rows()


def test_reference_tables_present() -> None:
    assert ENV_VAR_TEST.is_file(), f"missing BuildKit table {ENV_VAR_TEST}"
    assert WORDS_TEST.is_file(), f"missing BuildKit table {WORDS_TEST}"
    assert ENV_VAR_ROWS and WORDS_ROWS, "BuildKit tables have no rows"


@pytest.mark.parametrize(("source", "expected"), ENV_VAR_ROWS)
def test_env_var_table(source: str, expected: str | None) -> None:
    if expected is None:
        with pytest.raises(ShellExpansionError):
            expand_word(source, ENV_VAR_TEST_ENV)
    else:
        assert expand_word(source, ENV_VAR_TEST_ENV).words == (expected,)


@pytest.mark.parametrize(("source", "env", "expected"), WORDS_ROWS)
def test_words_table(source: str, env: dict[str, str], expected: tuple[str, ...] | None) -> None:
    if expected is None:
        with pytest.raises(ShellExpansionError):
            expand_words(source, env)
    else:
        assert expand_words(source, env).words == expected


# -- used / unset ---------------------------------------------------------------


def test_used_and_unset_are_reported() -> None:
    result = expand_word("${FOO:-x}$BAR${BAZ+y}", {"FOO": "", "BAR": "b"})
    assert result == Expansion(("xb",), frozenset({"FOO", "BAR"}), frozenset({"BAZ"}))


def test_unneeded_default_is_still_looked_up() -> None:
    # BuildKit expands the operand before it checks the variable.
    result = expand_word("${A:-$B}", {"A": "a"})
    assert result == Expansion(("a",), frozenset({"A"}), frozenset({"B"}))


def test_unneeded_default_still_raises() -> None:
    with pytest.raises(ShellExpansionError, match="B: x"):
        expand_word("${A:-${B:?x}}", {"A": "a"})


def test_quoted_and_escaped_references_are_not_looked_up() -> None:
    result = expand_word("'$FOO'\\$BAR", {"FOO": "f", "BAR": "b"})
    assert result == Expansion(("$FOO$BAR",), frozenset(), frozenset())


def test_expand_words_reports_references_too() -> None:
    result = expand_words("$A ${B:-c}", {"A": "a b"})
    assert result == Expansion(("a", "b", "c"), frozenset({"A"}), frozenset({"B"}))


def test_required_variable_message() -> None:
    with pytest.raises(ShellExpansionError, match="FOO: custom msg"):
        expand_word("${FOO:?custom $BAR}", {"FOO": "", "BAR": "msg"})


# -- backtick escape ------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ('a`$FOO`"', 'a$FOO"'),  # backtick escapes $ and quotes
        ("C:\\path\\$FOO", "C:\\path\\x"),  # backslash is an ordinary character
        ('"a`"b\\"', 'a"b\\'),  # inside double quotes too
        ("abc`", "abc"),  # a trailing escape is dropped
    ],
)
def test_backtick_escape(source: str, expected: str) -> None:
    assert expand_word(source, {"FOO": "x"}, escape="`").words == (expected,)


def test_backtick_escaped_space_joins_words() -> None:
    assert expand_words("a` b c", {}, escape="`").words == ("a b", "c")


def test_other_escape_characters_are_rejected() -> None:
    with pytest.raises(ValueError) as caught:
        expand_word("a", {}, escape="^")
    assert not isinstance(caught.value, ShellExpansionError)


# -- patterns -------------------------------------------------------------------


def test_prefix_suffix_and_replace() -> None:
    word = "${F#*/}|${F##*/}|${F%.*}|${F%%.*}|${F/o/0}|${F//o/0}"
    expected = "|".join(
        [
            "opt/foo/app.tar.gz",
            "app.tar.gz",
            "/opt/foo/app.tar",
            "/opt/foo/app",
            "/0pt/foo/app.tar.gz",
            "/0pt/f00/app.tar.gz",
        ]
    )
    assert expand_word(word, {"F": "/opt/foo/app.tar.gz"}).words == (expected,)


def test_escaped_wildcard_in_pattern() -> None:
    assert expand_word("${F%%\\**}", {"F": "xx**"}).words == ("xx",)


def test_unknown_pattern_escape_is_an_error() -> None:
    with pytest.raises(ShellExpansionError, match="invalid escape"):
        expand_word("${F#\\x}", {"F": "xx"})


def test_colon_with_pattern_removal_is_an_error() -> None:
    with pytest.raises(ShellExpansionError, match="unsupported modifier"):
        expand_word("${F:#x}", {"F": "xx"})


def test_replace_all_expands_go_template_but_single_replace_does_not() -> None:
    # BuildKit hands ${V//p/r}'s replacement to Go's regexp template ($0 = match).
    assert expand_word("${F//o/<\\$0>}|${F/o/<\\$0>}", {"F": "foo"}).words == ("f<\\o><\\o>|f<\\$0>o",)


def test_replace_all_follows_go_empty_match_rules() -> None:
    # re.sub(".*", "x", "ab") gives "xx": Go skips the empty match at the end.
    assert expand_word("${F//*/x}|${F//$E/-}", {"F": "ab", "E": ""}).words == ("x|-a-b-",)


# -- word splitting quirks ------------------------------------------------------


def test_operand_scan_drops_the_unfinished_word() -> None:
    # BuildKit shares one word buffer between nested scans: "a" is lost.
    assert expand_words("a${X:-y}b c", {}).words == ("yb", "c")


def test_empty_quoted_words_vanish() -> None:
    assert expand_words("'' a \"\"", {}).words == ("a",)


def test_heredoc_marker_keeps_its_blanks() -> None:
    assert expand_words("RUN <<  EOF a", {}).words == ("RUN", "<<  EOF", "a")


def test_empty_line_has_no_words() -> None:
    assert expand_words("", {}).words == ()


def test_whitespace_is_gos_unicode_space() -> None:
    # Go's unicode.IsSpace: NBSP splits words, U+001C (str.isspace()) does not.
    assert expand_words("a\x1cb c\xa0d", {}).words == ("a\x1cb", "c", "d")


def test_leading_byte_order_mark_is_ignored() -> None:
    # Go's text/scanner skips a BOM only at the very start of its input.
    assert expand_word("\ufeff$A\ufeff", {"A": "x"}).words == ("x\ufeff",)


def test_leading_byte_order_mark_in_pattern_is_ignored() -> None:
    assert expand_word("${A#\ufeffx}", {"A": "xx"}).words == ("x",)


def test_go_template_edge_cases_in_replace_all() -> None:
    # $$ -> $, unknown names -> "", ${0} -> match, malformed references stay.
    result = expand_word("${F//o/$R}", {"F": "o", "R": "<$$|$x|${0}|$.|${0|$>"})
    assert result.words == ("<$||o|$.|${0|$>",)


@pytest.mark.parametrize(
    ("word", "env", "message"),
    [
        ("${V?}", {}, "V: is not allowed to be unset"),
        ("${V:?}", {}, "V: is not allowed to be unset"),
        ("${V:?}", {"V": ""}, "V: is not allowed to be empty"),
    ],
)
def test_required_variable_default_messages(word: str, env: dict[str, str], message: str) -> None:
    with pytest.raises(ShellExpansionError, match=message):
        expand_word(word, env)


def test_raw_quotes_and_skip_unset_print_a_run_as_buildkits_progress_does():
    # BuildKit prints a RUN with RawQuotes and SkipUnsetEnv (dockerfile2llb's dispatchRun).
    env = {"V": "1"}
    text = "RUN echo \"$V\" '$V' ${V} $U ${U} ${U:-x} ${U/a/b} \\$V"
    [shown] = expand_word(text, env, raw_quotes=True, keep_unset=True).words
    assert shown == "RUN echo \"1\" '$V' 1 $U ${U} ${U:-x} ${U/a/b} $V"
    # Without them, as for COPY and WORKDIR: quotes removed, unset names empty.
    assert expand_word('COPY "a b" $U${V} /x', env).words == ("COPY a b 1 /x",)
