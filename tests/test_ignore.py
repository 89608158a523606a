"""Tests for ctxwatchd.context.ignore: .dockerignore reading and matching, COPY wildcards.

The tables follow the behaviour pinned by moby/patternmatcher's and Go's
path/filepath tests (cases written anew here), plus the quirks of the Go
code that BuildKit really runs.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ctxwatchd.context.ignore import (
    IgnoreFileError,
    MatchState,
    PathMatcher,
    filepath_match,
    has_wildcard,
    read_ignore_file,
)

# --------------------------------------------------------------------------
# read_ignore_file (ignorefile.ReadAll)


def test_read_all_normalizes_each_line():
    text = "test1\n/test2\n/a/file/here\n\nlastfile\n# this is a comment\n! /inverted/abs/path\n"
    expected = ["test1", "test2", "a/file/here", "lastfile", "!inverted/abs/path"]
    assert read_ignore_file(text) == expected


@pytest.mark.parametrize(
    ("line", "pattern"),
    [
        ("./a", "a"),
        ("/./a", "a"),
        ("a/../b", "b"),
        ("a/b/../../c", "c"),
        ("../a", "../a"),
        ("/../a", "a"),
        ("ignored/", "ignored"),
        ("a//b///", "a/b"),
        ("/", "/"),  # only a longer pattern loses its leading slash
        ("  spaced  ", "spaced"),
        ("\u00a0nbsp\u3000", "nbsp"),  # Go's TrimSpace knows Unicode spaces
        ("\x1csep", "\x1csep"),  # ... but not the ASCII separators str.strip eats
        (" # not a comment", "# not a comment"),
        ("!./a/", "!a"),
        ("! /a", "!a"),
        ("!!a", "!!a"),
        ("\\!a", "\\!a"),
        ("a\r", "a"),
    ],
)
def test_read_all_line_rules(line, pattern):
    assert read_ignore_file(line + "\n") == [pattern]


def test_read_all_skips_comments_and_blank_lines():
    assert read_ignore_file("#a\n\n   \n\t\n#\n") == []
    assert read_ignore_file("") == []


def test_read_all_line_ending_and_final_line():
    assert read_ignore_file("a\r\nb") == ["a", "b"]
    assert read_ignore_file(b"a\nb\n") == ["a", "b"]


def test_read_all_strips_a_bom_only_at_the_start():
    assert read_ignore_file(b"\xef\xbb\xbfa\nb\n") == ["a", "b"]
    assert read_ignore_file("\ufeff#comment\nb") == ["b"]
    assert read_ignore_file("a\n\ufeffb") == ["a", "\ufeffb"]


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("a\nb\n!\n", 3),
        ("! \n", 1),
        ("a\n!/\n", 2),  # New cleans "!/" to "!"
        ("a\n[\n", 2),
        ("a\nb\\\n", 2),
        ("ok\n" + "a" * 65536 + "\n", 2),  # bufio.Scanner's token limit
    ],
)
def test_read_all_errors_name_the_line(text, line):
    with pytest.raises(IgnoreFileError) as info:
        read_ignore_file(text)
    assert info.value.line == line
    assert f"line {line}:" in str(info.value)
    assert isinstance(info.value, ValueError)


def test_read_all_accepts_the_longest_line():
    assert read_ignore_file("a" * 65535) == ["a" * 65535]


# --------------------------------------------------------------------------
# PathMatcher construction (patternmatcher.New)


def test_patterns_are_cleaned_and_empty_ones_dropped():
    matcher = PathMatcher(["docs/", "  !docs/README.md  ", "", "a/../b", " "])
    assert matcher.patterns == ("docs", "!docs/README.md", "b")
    assert matcher.has_exceptions


def test_has_exceptions_false_without_bang():
    assert not PathMatcher(["docs", "*.md"]).has_exceptions


@pytest.mark.parametrize("bad", ["!", "[", "[]a]", "[-]", "[x-]", "[a-b-c]", "[^", "a\\", "!a["])
def test_new_rejects_bad_patterns(bad):
    with pytest.raises(ValueError):
        PathMatcher(["ok", bad])


def test_new_checks_syntax_as_lazily_as_go():
    # New tries the pattern on ".": "a" already fails, so "[" is never read.
    matcher = PathMatcher(["a*[]a]"])
    assert matcher.excluded_full("ab]")
    assert not matcher.excluded_full("b]")


def test_regexp_errors_surface_only_where_the_pattern_is_tried():
    # "[Local-Only]" is a valid glob but its l-O range breaks Go's regexp.
    matcher = PathMatcher(["a", "![Local-Only]"])
    assert not matcher.excluded_full("b")  # the exception is never tried
    with pytest.raises(ValueError):
        matcher.excluded_full("a")


def test_new_keeps_what_read_all_would_have_normalized():
    # New cleans before looking at "!", so "./a" stays and never matches.
    assert PathMatcher(["a", "!./a"]).excluded_full("a")
    assert not PathMatcher(read_ignore_file("a\n!./a\n")).excluded_full("a")
    # and a leading "/" is only stripped by ReadAll
    assert not PathMatcher(["/a.txt"]).excluded_full("a.txt")


# --------------------------------------------------------------------------
# Matching one pattern


SINGLE_PATTERN_CASES = [
    ("**", "file", True),
    ("**", "dir/file", True),
    ("**/", "file", True),
    ("**/**", "dir/file", True),
    ("dir/**", "dir/file", True),
    ("dir/**", "dir/dir2/file", True),
    ("dir/**", "dir", False),
    ("**/dir", "dir", True),
    ("**/dir", "dir/file", True),
    ("**/dir", "a/b/dir/file", True),
    ("**/dir2/*", "dir/dir2/file", True),
    ("**/dir2/**", "dir/dir2/dir3/file", True),
    ("**file", "file", True),
    ("**file", "dir/dir/file", True),
    ("**/file*.txt", "dir/dir/file.txt", True),
    ("**/**/*.txt", "dir/dir/file.txt", True),
    ("**/**/*.txt2", "dir/dir/file.txt", False),
    ("**/*.txt", "file.txt", True),
    ("a**/*.txt", "a/file.txt", True),
    ("a**/*.txt", "a/dir/dir/file.txt", True),
    ("a/*.txt", "a/dir/file.txt", False),
    ("a/*.txt", "a/file.txt", True),
    ("a/*.txt**", "a/file.txt", True),
    ("**/foo/bar", "foo/bar", True),
    ("**/foo/bar", "dir/dir2/foo/bar", True),
    ("**/.foo", ".foo", True),
    ("**/.foo", "bar.foo", False),
    ("*", "a/b", True),  # "a" matches, and a matched directory takes its contents
    ("*.go", "dir/x.go", False),
    ("a[b-d]e", "ace", True),
    ("a[b-d]e", "aae", False),
    ("a[^b-d]e", "aze", True),
    ("a[^b-d]e", "ace", False),
    (".*", ".foo", True),
    (".*", "foo", False),
    ("abc.def", "abcZdef", False),
    ("abc.def", "abc.def", True),
    ("abc?def", "abcZdef", True),
    ("abc?def", "abc/def", False),
    ("a\\\\", "a\\", True),
    ("a\\*b", "a*b", True),
    ("a\\*b", "axb", False),
    ("a(b)c/def", "a(b)c/def", True),
    ("a.|)$(}+{bc", "a.|)$(}+{bc", True),
    ("dist/*.whl", "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl", True),
    ("ignored", "ignored/x/y", True),
    ("ignored", "ignoredx", False),
    ("ignored", "x/ignored", False),
]


@pytest.mark.parametrize(("pattern", "path", "expected"), SINGLE_PATTERN_CASES)
def test_single_pattern(pattern, path, expected):
    assert PathMatcher([pattern]).excluded_full(path) is expected


# Quirks of the Go code: the pattern becomes a Go regexp by text substitution.
QUIRK_CASES = [
    ("**.txt", "dir/a.txt", True),  # "**<literal>" is a plain suffix test
    ("a**", "abc/d", True),  # "<literal>**" is a plain prefix test
    ("[!a]", "!", True),  # "!" is no negation, Go's regexp reads [!a] as {!, a}
    ("[!a]", "b", False),
    ("a[*]", "a]", True),  # "*" inside brackets still becomes "[^/]*"
    ("a[*]", "a*", False),
    ("[[:digit:]]", "5", True),  # Go's regexp knows POSIX classes
    ("[[:digit:]]", "d]", False),
    ("a|b*", "a", True),  # "|" is not escaped, so it splits the regexp ...
    ("a|b*", "xyzb", True),  # ... and each side is anchored at one end only
    ("a|b*", "zz", False),
    ("*.{js,ts}", "x.{js,ts}", True),  # no brace expansion: "{js,ts}" is literal
    ("*.{js,ts}", "x.js", False),
    ("a{2}*", "aa", True),  # but "{2}" is a regexp repetition
    ("a{2}*", "a{2}", False),
    ("x\\d*", "x5", True),  # and "\d" a regexp digit class
    ("x\\d*", "xd", False),
    ("a*\\", "ab$c", True),  # a trailing backslash escapes the regexp's "$"
    ("a*\\", "ab", False),
    ("a^*", "a^b", False),  # "^" is a regexp anchor
    ("\\!a", "!a", True),  # the way to name a file starting with "!"
]


@pytest.mark.parametrize(("pattern", "path", "expected"), QUIRK_CASES)
def test_patternmatcher_quirks(pattern, path, expected):
    assert PathMatcher([pattern]).excluded_full(path) is expected


# --------------------------------------------------------------------------
# Several patterns: exceptions, last match wins


MULTI_PATTERN_CASES = [
    (["!fileutils.go", "*.go"], "fileutils.go", True),
    (["*.go", "!fileutils.go"], "fileutils.go", False),
    (["docs", "!docs/README.md"], "docs/README.md", False),
    (["docs/", "!docs/README.md"], "docs/README.md", False),
    (["docs/*", "!docs/README.md"], "docs/README.md", False),
    (["**", "!util/docker/web"], "util/docker/web/foo", False),
    (["**", "!util/docker/web", "util/docker/web/foo"], "util/docker/web/foo", True),
    (["**", "!dist/*.whl"], "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl", False),
    (["**/node_modules"], "node_modules", True),
    (["**/node_modules"], "web/app/node_modules/react/index.js", True),
    (["**/node_modules"], "web/node_modules_cache", False),
    (["*.md", "!README.md"], "CHANGES.md", True),
    (["*.md", "!README.md"], "README.md", False),
    (["*.md", "!README.md"], "docs/guide.md", False),  # "*" stays in the top directory
    (["docs", "!docs/keep.txt"], "docs", True),
    (["docs", "!docs/keep.txt"], "docs/keep.txt", False),
    (["docs", "!docs/keep.txt"], "docs/other.txt", True),
    (["docs", "!docs/keep.txt"], "docs/sub/keep.txt", True),
    (["a/**", "!a/b"], "a/b/c", False),
]


@pytest.mark.parametrize(("patterns", "path", "expected"), MULTI_PATTERN_CASES)
def test_multi_pattern(patterns, path, expected):
    assert PathMatcher(patterns).excluded_full(path) is expected


def test_rooted_pattern_matches_only_at_the_root():
    matcher = PathMatcher(read_ignore_file("/a.txt\n"))
    assert matcher.excluded_full("a.txt")
    assert not matcher.excluded_full("sub/a.txt")


def test_walk_can_differ_from_matches_or_parent_matches():
    # BuildKit's walk skips the exception on "a/b" (nothing was excluded yet),
    # so the per-pattern state it hands down never records it.
    matcher = PathMatcher(["a/b/c", "!a/b"])
    assert matcher.excluded_full("a/b/c")
    assert not matcher.match("a/b/c").excluded  # no parent: MatchesOrParentMatches


def test_match_state_carries_per_pattern_hits():
    matcher = PathMatcher(["a/**", "!a/b"])
    a = matcher.match("a")
    ab = matcher.match("a/b", a)
    abc = matcher.match("a/b/c", ab)
    assert (a.excluded, ab.excluded, abc.excluded) == (False, False, False)
    assert isinstance(abc, MatchState)
    # "a/**" matches "a/b/c" itself; only the inherited "!a/b" hit re-includes it
    assert matcher.match("a/b/c", MatchState(False, 0)).excluded


def test_excluded_uses_the_parent_answer():
    matcher = PathMatcher(["build"])
    assert matcher.excluded("build")
    assert matcher.excluded("build/x", parent_excluded=True)
    assert not matcher.excluded("build/x")


def test_excluded_with_exceptions_needs_no_parent_answer():
    matcher = PathMatcher(["a/**", "!a/b"])
    assert not matcher.excluded("a/b/c", parent_excluded=False)
    assert matcher.excluded("a/c/d", parent_excluded=True)


# --------------------------------------------------------------------------
# Passing parent results equals matching from scratch

_POOL = [
    "a",
    "b",
    "a/b",
    "*.md",
    "**/c",
    "a/**",
    "b/*",
    "?",
    "[ab]",
    "**",
    "c",
    "!a/b",
    "!README.md",
    "!**/keep",
    "!a",
    "!c/a",
    "!b/*",
]
_NAMES = ["a", "b", "c", "x.md", "README.md", "keep"]

pattern_lists = st.lists(st.sampled_from(_POOL), min_size=1, max_size=5)
paths = st.lists(st.sampled_from(_NAMES), min_size=1, max_size=4).map("/".join)


def _walk(matcher: PathMatcher, targets: list[str]) -> tuple[dict[str, bool], dict[str, bool]]:
    """Visit every directory before its entries, as BuildKit does, in both APIs."""
    parts = [p.split("/") for p in targets]
    nodes = sorted({"/".join(p[:i]) for p in parts for i in range(1, len(p) + 1)})
    states: dict[str, MatchState] = {}
    answers: dict[str, bool] = {}
    for node in nodes:
        parent = node.rpartition("/")[0]
        states[node] = matcher.match(node, states.get(parent))
        answers[node] = matcher.excluded(node, answers.get(parent, False))
    return {n: s.excluded for n, s in states.items()}, answers


@settings(max_examples=300)
@given(pattern_lists, st.lists(paths, min_size=1, max_size=6))
def test_parent_results_equal_full_matching(patterns, targets):
    matcher = PathMatcher(patterns)
    by_state, by_bool = _walk(matcher, targets)
    for node, excluded in by_state.items():
        assert excluded == matcher.excluded_full(node)
        assert by_bool[node] == excluded


@settings(max_examples=200)
@given(pattern_lists, paths)
def test_without_exceptions_ancestor_scan_equals_walk(patterns, path):
    matcher = PathMatcher([p for p in patterns if not p.startswith("!")])
    assert matcher.match(path).excluded == matcher.excluded_full(path)


# --------------------------------------------------------------------------
# entries_state: one answer for all entries of a folder no pattern can reach

_PREFIX_POOL = [
    *_POOL,
    "a/b/c",
    "a/b/*.md",
    "a/**/c",
    "b/c|x*",
    "ab{0}/c*",
    "a/b{1}",
    "a\\/b",
    "[a-c]/b",
    "a/b/**",
    "**.md",
    "!a/b/keep",
    "!**",
]
_ENTRY_NAMES = [*_NAMES, "aa", "b{1}", "c|x", "keepx"]


@settings(max_examples=400)
@given(st.lists(st.sampled_from(_PREFIX_POOL), min_size=1, max_size=5), paths)
def test_entries_state_equals_matching_each_entry(patterns, folder):
    matcher = PathMatcher(patterns)
    state = matcher.walk_state(folder)
    shared = matcher.entries_state(folder, state)
    if shared is not None:
        for name in _ENTRY_NAMES:
            assert matcher.match(f"{folder}/{name}", state) == shared, (patterns, folder, name)


def test_entries_state_answers_once_below_top_level_patterns():
    matcher = PathMatcher(["node_modules", ".git", "build/**", "!build/keep"])
    assert matcher.entries_state("src/app", matcher.walk_state("src/app")) == MatchState(False, 0)
    excluded = matcher.walk_state("node_modules/x")
    assert matcher.entries_state("node_modules/x", excluded) == excluded
    assert matcher.entries_state("", matcher.walk_state("")) is None  # node_modules is an entry of the root
    assert matcher.entries_state("build", matcher.walk_state("build")) is None  # the exception may apply


@pytest.mark.parametrize("pattern", ["**/*.md", "*/x", "a|b*", "x{2}*", "\ufeffa*"])
def test_entries_state_gives_up_where_a_pattern_can_reach_anywhere(pattern):
    matcher = PathMatcher([pattern])
    assert matcher.entries_state("deep/folder", matcher.walk_state("deep/folder")) is None


# --------------------------------------------------------------------------
# may_include_under (fsutil's skip of excluded directories)


def test_nothing_to_descend_for_without_exceptions():
    matcher = PathMatcher(["docs", "**/node_modules"])
    assert not matcher.may_include_under("docs")
    assert not matcher.may_include_under("a/node_modules")


def test_descend_only_towards_a_literal_exception():
    matcher = PathMatcher(["docs", "!docs/keep.txt", "vendor", "!vendor/a/b/**"])
    assert matcher.may_include_under("docs")
    assert not matcher.may_include_under("doc")
    assert not matcher.may_include_under("docs/sub")
    assert matcher.may_include_under("vendor")
    assert matcher.may_include_under("vendor/a")
    assert matcher.may_include_under("vendor/a/b")
    assert not matcher.may_include_under("vendor/c")


def test_trailing_globs_are_trimmed_from_exceptions():
    assert PathMatcher(["*", "!docs/*"]).may_include_under("docs")
    assert not PathMatcher(["*", "!docs/*"]).may_include_under("other")
    assert not PathMatcher(["*", "!docs/**"]).may_include_under("docs/sub")


@pytest.mark.parametrize("exception", ["!*.md", "!docs/*.md", "!docs/**/x", "!a?", "!a^b", "!a\\b"])
def test_any_wildcard_exception_means_descend_everywhere(exception):
    assert PathMatcher(["docs", exception]).may_include_under("unrelated/dir")


# --------------------------------------------------------------------------
# filepath_match (Go's path/filepath.Match)


FILEPATH_MATCH_CASES = [
    ("abc", "abc", True),
    ("*", "abc", True),
    ("*c", "abc", True),
    ("a*", "a", True),
    ("a*", "abc", True),
    ("a*", "ab/c", False),
    ("a*/b", "abc/b", True),
    ("a*/b", "a/c/b", False),
    ("a*b*c*d*e*/f", "axbxcxdxe/f", True),
    ("a*b*c*d*e*/f", "axbxcxdxexxx/f", True),
    ("a*b*c*d*e*/f", "axbxcxdxe/xxx/f", False),
    ("a*b*c*d*e*/f", "axbxcxdxexxx/fff", False),
    ("a*b?c*x", "abxbbxdbxebxczzx", True),
    ("a*b?c*x", "abxbbxdbxebxczzy", False),
    ("ab[c]", "abc", True),
    ("ab[b-d]", "abc", True),
    ("ab[e-g]", "abc", False),
    ("ab[^c]", "abc", False),
    ("ab[^b-d]", "abc", False),
    ("ab[^e-g]", "abc", True),
    ("a\\*b", "a*b", True),
    ("a\\*b", "ab", False),
    ("a?b", "a☺b", True),
    ("a[^a]b", "a☺b", True),
    ("a???b", "a☺b", False),
    ("[a-ζ]*", "α", True),
    ("*[a-ζ]", "A", False),
    ("a?b", "a/b", False),
    ("a*b", "a/b", False),
    ("[\\]a]", "]", True),
    ("[\\-]", "-", True),
    ("[x\\-]", "x", True),
    ("[x\\-]", "-", True),
    ("[x\\-]", "z", False),
    ("[\\-x]", "a", False),
    ("*x", "xxx", True),
    ("[!a]", "!", True),  # only "^" negates
    ("[!a]", "b", False),
    ("[z-a]", "m", False),  # a reversed range is allowed and matches nothing
    ("[^z-a]", "m", True),
    ("*[^x][^x]*c", "aa/c", False),  # the first "*" keeps its shortest fit
    ("*/*", "a/b", True),
    ("", "", True),
    ("", "a", False),
]


@pytest.mark.parametrize(("pattern", "name", "expected"), FILEPATH_MATCH_CASES)
def test_filepath_match(pattern, name, expected):
    assert filepath_match(pattern, name) is expected


@pytest.mark.parametrize(
    ("pattern", "name"),
    [
        ("[]a]", "]"),
        ("[-]", "-"),
        ("[x-]", "x"),
        ("[-x]", "x"),
        ("\\", "a"),
        ("[a-b-c]", "a"),
        ("[", "a"),
        ("[^", "a"),
        ("[^bc", "a"),
        ("a[", "a"),
        ("a[", "ab"),
        ("a*[", "a"),
    ],
)
def test_filepath_match_bad_pattern(pattern, name):
    with pytest.raises(ValueError, match="syntax error in pattern"):
        filepath_match(pattern, name)


def test_filepath_match_reports_only_what_it_reads():
    # Go stops at the first chunk that fails, before the broken "[".
    assert filepath_match("a*[", "b") is False


# --------------------------------------------------------------------------
# has_wildcard (BuildKit's containsWildcards)


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("*.txt", True),
        ("src/?.c", True),
        ("[ab].c", True),
        ("plain/path.txt", False),
        ("a]b", False),
        ("{a,b}", False),
        ("a\\*b", False),  # escaped
        ("a\\\\*", True),  # an escaped backslash, then a real star
        ("trailing\\", False),
    ],
)
def test_has_wildcard(source, expected):
    assert has_wildcard(source) is expected
