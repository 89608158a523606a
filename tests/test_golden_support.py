"""support/golden.py reads the golden cases as their README defines them and lays them out exactly."""

from __future__ import annotations

import base64
import os
import stat
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from support import golden as golden_support
from support.golden import GOLDEN_DIR, GoldenCase, Workspace, load_cases, parse_case

CASES = load_cases()
CASES_BY_ID = {case.id: case for case in CASES}
SOME_EPOCH_NS = 1_000_000_000_000_000_000


def raw_case(**data: object) -> dict:
    """The json of a small synthetic case; one empty phase unless `phases` are given."""
    steps = {} if "phases" in data else {"steps": []}
    return {"id": "synthetic", "files": {}, "dockerfile": "FROM scratch\n", "expected": [], **steps, **data}


def make_case(**data: object) -> GoldenCase:
    return parse_case(raw_case(**data))


def results_by_phase(count: int) -> list[dict]:
    """expected_by_phase for `count` phases whose builds show no steps."""
    return [{"after_phase": i, "label": f"p{i}", "build_fails": False, "expected": []} for i in range(1, count + 1)]


def mode_of(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


@pytest.fixture
def strict_umask() -> Iterator[None]:
    """A umask that would spoil every mode the workspace does not set itself."""
    old = os.umask(0o077)
    yield
    os.umask(old)


@pytest.fixture
def ws(tmp_path: Path, strict_umask: None) -> Workspace:
    case = make_case(files={"a.txt": "hello\n", "src/b.txt": "b\n"}, outside_files={"o.txt": "o\n"})
    return Workspace(case, tmp_path)


# --- loading


def test_load_cases_finds_every_file() -> None:
    assert len(CASES) == len(list(GOLDEN_DIR.glob("*.json")))
    assert [case.id for case in CASES] == sorted(case.id for case in CASES)


SHARED_GOLDEN_DIR = Path(__file__).resolve().parents[2] / "shared" / "golden"


@pytest.mark.skipif(not SHARED_GOLDEN_DIR.is_dir(), reason="no shared golden set beside the repository")
def test_copy_equals_the_shared_golden_set() -> None:
    """New or changed cases arrive in the shared set first: the copy in tests/data must follow it."""

    def contents(folder: Path) -> dict[str, bytes]:
        return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}

    ours, shared = contents(GOLDEN_DIR), contents(SHARED_GOLDEN_DIR)
    missing = sorted(set(shared) - set(ours))
    extra = sorted(set(ours) - set(shared))
    changed = sorted(name for name in set(ours) & set(shared) if ours[name] != shared[name])
    assert (missing, extra, changed) == ([], [], []), (
        f"tests/data/golden differs from {SHARED_GOLDEN_DIR}: copy the shared set into tests/data/golden"
    )


@pytest.mark.parametrize("make_folder", [lambda path: None, lambda path: path.mkdir()], ids=["missing", "empty"])
def test_load_cases_raises_without_cases(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, make_folder: Callable[[Path], None]
) -> None:
    folder = tmp_path / "golden"
    make_folder(folder)
    monkeypatch.setattr(golden_support, "GOLDEN_DIR", folder)
    with pytest.raises(FileNotFoundError):
        load_cases()


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.id)
def test_builds_line_up_with_phases(case: GoldenCase) -> None:
    data = case.data
    assert len(case.builds) == len(case.phases) >= 1
    by_phase = data.get("expected_by_phase") or [data]
    assert len(by_phase) == len(case.builds)
    for build, raw in zip(case.builds, by_phase, strict=True):
        assert [(s.stage, s.line, s.instruction, s.cached) for s in build.expected] == [
            (str(e["stage"]), e["line"], e["instruction"], e["cached"]) for e in raw["expected"]
        ]
        assert build.build_fails == raw.get("build_fails", False)
    assert case.builds[-1].build_fails == data.get("build_fails", False)
    assert case.builds[-1].error == data.get("error")
    assert all(build.reusing_context is None for build in case.builds[:-1])
    assert (case.builds[-1].reusing_context is None) == ("observed_reusing_context" not in data)


def test_steps_are_a_single_phase() -> None:
    case = CASES_BY_ID["touch_mtime_only"]
    assert case.phases == (tuple(case.data["steps"]),)


def test_phase_objects_give_ops_and_build_args() -> None:
    case = CASES_BY_ID["b2_arg_copy_src_default_form"]
    assert case.phases == ((), ())
    assert case.first_build_args == {}
    assert [build.build_args for build in case.builds] == [{"SRC": "a"}, {"SRC": "b"}]


def test_build_args_after_apply_to_the_later_build() -> None:
    case = CASES_BY_ID["build_arg_declared_used"]
    assert case.first_build_args == {"V": "1"}
    assert case.builds[0].build_args == {"V": "2"}


def test_build_args_accumulate_from_phase_to_phase() -> None:
    case = make_case(
        build_args={"A": "1", "B": "1"},
        build_args_after={"B": "2"},
        phases=[{"steps": [], "build_args": {"C": "3"}}, [], {"steps": [], "build_args": {"A": "4"}}],
        expected_by_phase=results_by_phase(3),
    )
    assert case.first_build_args == {"A": "1", "B": "1"}
    assert [build.build_args for build in case.builds] == [
        {"A": "1", "B": "2", "C": "3"},
        {"A": "1", "B": "2", "C": "3"},
        {"A": "4", "B": "2", "C": "3"},
    ]
    assert [build.label for build in case.builds] == ["p1", "p2", "p3"]


@pytest.mark.parametrize(
    ("opts", "no_cache", "no_cache_filter"),
    [
        ({}, False, ()),
        ({"no-cache": ""}, True, ()),
        ({"no-cache": "a, b"}, False, ("a", "b")),
    ],
)
def test_frontend_opts_no_cache(opts: dict, no_cache: bool, no_cache_filter: tuple[str, ...]) -> None:
    build = make_case(frontend_opts=opts).builds[0]
    assert (build.no_cache, build.no_cache_filter) == (no_cache, no_cache_filter)


def test_no_cache_filter_of_a_real_case() -> None:
    build = CASES_BY_ID["b2_no_cache_stage_list"].builds[0]
    assert (build.no_cache, build.no_cache_filter) == (False, ("gen",))


def test_target_and_failing_build() -> None:
    case = CASES_BY_ID["b2_target_is_stage_with_missing_source_expect_fail"]
    build = case.builds[-1]
    assert case.first_target == build.target == "broken"
    assert build.build_fails
    assert build.error == case.data["error"]
    failing = [step for step in build.expected if step.error]
    assert [(step.stage, step.instruction) for step in failing] == [("broken", "COPY does-not-exist.txt /x")]


def test_steps_fields() -> None:
    entries = [
        {"stage": 0, "line": 2, "instruction": "COPY --link a /a", "cached": True, "link_rebased": True},
        {"stage": "final", "line": 3, "instruction": "RUN x", "cached": False},
    ]
    first, second = make_case(expected=entries).builds[0].expected
    assert (first.stage, first.line, first.instruction, first.cached, first.link_rebased) == (
        "0",
        2,
        "COPY --link a /a",
        True,
        True,
    )
    assert (second.stage, second.cached, second.link_rebased, second.error) == ("final", False, False, None)


def test_final_build_of_phases_takes_the_top_level_outcome() -> None:
    step = {"stage": 0, "line": 2, "instruction": "COPY a /a", "cached": False, "error": "not found"}
    by_phase = [*results_by_phase(1), {"after_phase": 2, "label": "p2", "build_fails": True, "expected": [step]}]
    case = make_case(
        phases=[[], []],
        expected=[step],
        expected_by_phase=by_phase,
        build_fails=True,
        error="failed to solve",
        observed_reusing_context=[{**step, "cached": True}],
    )
    first, last = case.builds
    assert (first.build_fails, first.error, first.reusing_context) == (False, None, None)
    assert (last.build_fails, last.error) == (True, "failed to solve")
    assert [step.cached for step in last.reusing_context] == [True]


def test_reusing_context_of_a_real_case() -> None:
    build = CASES_BY_ID["setxattr_user_foo"].builds[-1]
    assert build.reusing_context is not None
    assert all(step.cached for step in build.reusing_context)
    assert not all(step.cached for step in build.expected)


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        ({"surprise": 1}, "unknown case keys"),
        ({"phases": [[]], "steps": []}, "exactly one"),
        ({"phases": [[], []], "expected_by_phase": results_by_phase(1)}, "does not list"),
        ({"phases": [{"steps": [], "args": {}}], "expected_by_phase": results_by_phase(1)}, "unknown phase keys"),
        ({"frontend_opts": {"platform": "linux/arm64"}}, "unknown frontend_opts"),
    ],
)
def test_parse_rejects_what_it_does_not_understand(bad: dict, reason: str) -> None:
    with pytest.raises(ValueError, match=f"synthetic: .*{reason}"):
        make_case(**bad)


def test_last_phase_must_equal_expected() -> None:
    step = {"stage": 0, "line": 2, "instruction": "RUN x", "cached": True}
    by_phase = [{"after_phase": 1, "label": "", "build_fails": False, "expected": [{**step, "cached": False}]}]
    with pytest.raises(ValueError, match="differs"):
        make_case(phases=[[]], expected=[step], expected_by_phase=by_phase)


# --- laying out the first build


def test_workspace_lays_out_every_file_spec(tmp_path: Path, strict_umask: None) -> None:
    files = {
        "a-hard": {"hardlink": "plain.txt"},  # before its target: links are made last
        "plain.txt": "hi\n",
        "bin/tool": {"content": "#!/bin/sh\n", "mode": "0755"},
        "blob": {"content_b64": base64.b64encode(b"\x00\xff").decode()},
        "empty-exec": {"mode": "0700"},
        "d/e": {"dir": True, "mode": "0700"},
        "rel-link": {"symlink": "plain.txt"},
        "ctx-link": {"symlink": "{CTX}/plain.txt"},
        "out-link": {"symlink": "{OUTSIDE}/secret.txt"},
        "owned": {"content": "o", "uid": 1234, "gid": 4321},
        "tagged": {"content": "t", "xattrs": {"user.foo": "bar"}},
        "old/f": {"content": "f", "mtime": 1_000_000_000.5},
        "old": {"dir": True, "mtime": 1_000_000_000},
    }
    ws = Workspace(make_case(files=files, outside_files={"secret.txt": "secret\n"}), tmp_path)
    ctx = ws.context_dir
    assert (ctx, ws.outside_dir) == (tmp_path / "ctx", tmp_path / "outside")
    assert ws.dockerfile_path == ctx / "Dockerfile"
    assert ws.dockerfile_path.read_text() == "FROM scratch\n"
    assert not (tmp_path / "dockerfile-dir").exists()
    assert {p: mode_of(ctx / p) for p in ("plain.txt", "bin/tool", "bin", "empty-exec", "d", "d/e", "Dockerfile")} == {
        "plain.txt": 0o644,
        "bin/tool": 0o755,
        "bin": 0o755,
        "empty-exec": 0o700,
        "d": 0o755,
        "d/e": 0o700,
        "Dockerfile": 0o644,
    }
    assert mode_of(ctx) == mode_of(ws.outside_dir) == 0o755
    assert (ctx / "blob").read_bytes() == b"\x00\xff"
    assert (ctx / "empty-exec").read_bytes() == b""
    assert [os.readlink(ctx / p) for p in ("rel-link", "ctx-link", "out-link")] == [
        "plain.txt",
        str(ctx / "plain.txt"),
        str(ws.outside_dir / "secret.txt"),
    ]
    assert (ctx / "out-link").read_text() == "secret\n"
    assert os.lstat(ctx / "a-hard").st_ino == os.lstat(ctx / "plain.txt").st_ino
    assert os.lstat(ctx / "plain.txt").st_nlink == 2
    assert (os.lstat(ctx / "owned").st_uid, os.lstat(ctx / "owned").st_gid) == (1234, 4321)
    assert os.getxattr(ctx / "tagged", "user.foo") == b"bar"
    assert os.lstat(ctx / "old/f").st_mtime_ns == 1_000_000_000_500_000_000
    assert os.lstat(ctx / "old").st_mtime_ns == 1_000_000_000_000_000_000


def test_workspace_dockerfile_outside_the_context(tmp_path: Path) -> None:
    case = make_case(
        files={"a.txt": "a\n"},
        dockerfile_in_context=False,
        dockerfile_name="build.Dockerfile",
        dockerfile_dir_files={"build.Dockerfile.dockerignore": "a.txt\n"},
    )
    ws = Workspace(case, tmp_path)
    assert ws.dockerfile_path == tmp_path / "dockerfile-dir" / "build.Dockerfile"
    assert ws.dockerfile_path.read_text() == "FROM scratch\n"
    assert (ws.dockerfile_path.parent / "build.Dockerfile.dockerignore").read_text() == "a.txt\n"
    assert sorted(p.name for p in ws.context_dir.iterdir()) == ["a.txt"]


def test_workspace_of_a_real_out_of_context_case(tmp_path: Path, strict_umask: None) -> None:
    case = CASES_BY_ID["b2_add_chmod"]
    ws = Workspace(case, tmp_path)
    assert ws.dockerfile_path.read_text() == case.data["dockerfile"]
    assert ws.dockerfile_path.parent == tmp_path / "dockerfile-dir"
    assert sorted(p.name for p in ws.context_dir.iterdir()) == ["busybox", "s.sh"]
    assert (mode_of(ws.context_dir / "s.sh"), mode_of(ws.context_dir / "busybox")) == (0o644, 0o755)


def test_workspace_of_a_real_symlink_to_outside(tmp_path: Path) -> None:
    ws = Workspace(CASES_BY_ID["symlink_outside_context_copy_all_abs"], tmp_path)
    assert os.readlink(ws.context_dir / "ext") == str(ws.outside_dir / "secret.txt")
    assert (ws.context_dir / "ext").read_text() == "secret\n"


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.id)
def test_every_case_lays_out_its_files(case: GoldenCase, tmp_path: Path, strict_umask: None) -> None:
    ws = Workspace(case, tmp_path)
    for name, raw in case.data["files"].items():
        spec = raw if isinstance(raw, dict) else {"content": raw}
        path = ws.context_dir / name
        if "symlink" in spec:
            assert os.readlink(path) == spec["symlink"].replace("{CTX}", str(ws.context_dir)).replace(
                "{OUTSIDE}", str(ws.outside_dir)
            )
            continue
        content = base64.b64decode(spec["content_b64"]) if "content_b64" in spec else spec["content"].encode()
        assert path.read_bytes() == content, name
        assert mode_of(path) == int(spec.get("mode", "0644"), 8), name


# --- change ops


def test_write_creates_a_nested_file_with_exact_modes(ws: Workspace) -> None:
    ws.apply({"op": "write", "path": "new/deep/f.txt", "content": "x"})
    ctx = ws.context_dir
    assert (ctx / "new/deep/f.txt").read_text() == "x"
    assert [mode_of(ctx / p) for p in ("new", "new/deep", "new/deep/f.txt")] == [0o755, 0o755, 0o644]


def test_write_replaces_content_and_keeps_the_mode(ws: Workspace) -> None:
    os.chmod(ws.context_dir / "a.txt", 0o600)
    ws.apply({"op": "write", "path": "a.txt", "content": "bye\n"})
    assert (ws.context_dir / "a.txt").read_text() == "bye\n"
    assert mode_of(ws.context_dir / "a.txt") == 0o600


def test_write_content_b64(ws: Workspace) -> None:
    ws.apply({"op": "write", "path": "a.txt", "content_b64": base64.b64encode(b"\x01\x02").decode()})
    assert (ws.context_dir / "a.txt").read_bytes() == b"\x01\x02"


def test_write_append(ws: Workspace) -> None:
    ws.apply({"op": "write", "path": "a.txt", "content": "more\n", "append": True})
    assert (ws.context_dir / "a.txt").read_text() == "hello\nmore\n"


def test_write_mode(ws: Workspace) -> None:
    ws.apply({"op": "write", "path": "a.txt", "content": "x", "mode": "0751"})
    assert mode_of(ws.context_dir / "a.txt") == 0o751


def test_write_keep_mtime_restores_times_to_the_nanosecond(ws: Workspace) -> None:
    path = ws.context_dir / "a.txt"
    os.utime(path, ns=(SOME_EPOCH_NS + 123, SOME_EPOCH_NS + 456_789))
    ws.apply({"op": "write", "path": "a.txt", "content": "HELLO\n", "keep_mtime": True})
    after = os.stat(path)
    assert (after.st_atime_ns, after.st_mtime_ns) == (SOME_EPOCH_NS + 123, SOME_EPOCH_NS + 456_789)
    assert path.read_text() == "HELLO\n"


def test_write_keep_mtime_of_a_new_file_is_an_error(ws: Workspace) -> None:
    with pytest.raises(ValueError, match="keep_mtime"):
        ws.apply({"op": "write", "path": "new.txt", "content": "x", "keep_mtime": True})


def test_write_outside(ws: Workspace) -> None:
    ws.apply({"op": "write", "path": "@outside/o.txt", "content": "o2\n"})
    assert (ws.outside_dir / "o.txt").read_text() == "o2\n"
    assert not (ws.context_dir / "o.txt").exists()


def test_touch_sets_now(ws: Workspace) -> None:
    path = ws.context_dir / "a.txt"
    os.utime(path, ns=(SOME_EPOCH_NS, SOME_EPOCH_NS))
    before = time.time_ns()
    ws.apply({"op": "touch", "path": "a.txt"})
    assert before <= os.stat(path).st_mtime_ns <= time.time_ns()


def test_touch_steps_past_an_mtime_equal_to_now(ws: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    path = ws.context_dir / "a.txt"
    os.utime(path, ns=(SOME_EPOCH_NS, SOME_EPOCH_NS))
    monkeypatch.setattr(golden_support.time, "time_ns", lambda: SOME_EPOCH_NS)
    ws.apply({"op": "touch", "path": "a.txt"})
    assert os.stat(path).st_mtime_ns == SOME_EPOCH_NS + 1_000_000


def test_touch_explicit_mtime(ws: Workspace) -> None:
    ws.apply({"op": "touch", "path": "a.txt", "mtime": 1_234_567_890.25})
    assert os.stat(ws.context_dir / "a.txt").st_mtime_ns == 1_234_567_890_250_000_000


def test_touch_creates_a_missing_file(ws: Workspace) -> None:
    ws.apply({"op": "touch", "path": "sub/new.txt"})
    assert (ws.context_dir / "sub/new.txt").read_bytes() == b""
    assert mode_of(ws.context_dir / "sub/new.txt") == 0o644


def test_chmod(ws: Workspace) -> None:
    ws.apply({"op": "chmod", "path": "src", "mode": "0700"})
    assert mode_of(ws.context_dir / "src") == 0o700


def test_chown_changes_a_symlink_itself(ws: Workspace) -> None:
    ws.apply({"op": "symlink", "path": "link", "target": "a.txt"})
    ws.apply({"op": "chown", "path": "link", "uid": 1234, "gid": 4321})
    link, target = os.lstat(ws.context_dir / "link"), os.lstat(ws.context_dir / "a.txt")
    assert (link.st_uid, link.st_gid) == (1234, 4321)
    assert (target.st_uid, target.st_gid) == (os.getuid(), os.getgid())


def test_rm_file(ws: Workspace) -> None:
    ws.apply({"op": "rm", "path": "a.txt"})
    assert not os.path.lexists(ws.context_dir / "a.txt")


def test_rm_recursive_removes_a_tree(ws: Workspace) -> None:
    ws.apply({"op": "rm", "path": "src", "recursive": True})
    assert not os.path.lexists(ws.context_dir / "src")


def test_rm_without_recursive_keeps_a_full_directory(ws: Workspace) -> None:
    with pytest.raises(OSError):
        ws.apply({"op": "rm", "path": "src"})
    assert (ws.context_dir / "src/b.txt").exists()


def test_rm_symlink_to_a_directory_removes_only_the_link(ws: Workspace) -> None:
    ws.apply({"op": "symlink", "path": "link", "target": "src"})
    ws.apply({"op": "rm", "path": "link", "recursive": True})
    assert not os.path.lexists(ws.context_dir / "link")
    assert (ws.context_dir / "src/b.txt").exists()


def test_mkdir(ws: Workspace) -> None:
    ws.apply({"op": "mkdir", "path": "p/q"})
    ws.apply({"op": "mkdir", "path": "p/r", "mode": "0700"})
    ctx = ws.context_dir
    assert [mode_of(ctx / p) for p in ("p", "p/q", "p/r")] == [0o755, 0o755, 0o700]
    assert list((ctx / "p/q").iterdir()) == []


def test_symlink_expands_placeholders_and_replaces(ws: Workspace) -> None:
    ws.apply({"op": "symlink", "path": "a.txt", "target": "{OUTSIDE}/o.txt"})
    ws.apply({"op": "symlink", "path": "new/link", "target": "{CTX}/src"})
    ctx = ws.context_dir
    assert os.readlink(ctx / "a.txt") == str(ws.outside_dir / "o.txt")
    assert os.readlink(ctx / "new/link") == str(ctx / "src")
    ws.apply({"op": "symlink", "path": "new/link", "target": "b.txt"})
    assert os.readlink(ctx / "new/link") == "b.txt"


def test_hardlink_replaces_and_shares_the_inode(ws: Workspace) -> None:
    ws.apply({"op": "hardlink", "path": "src/b.txt", "target": "a.txt"})
    ctx = ws.context_dir
    assert os.stat(ctx / "src/b.txt").st_ino == os.stat(ctx / "a.txt").st_ino
    assert os.stat(ctx / "a.txt").st_nlink == 2
    assert (ctx / "src/b.txt").read_text() == "hello\n"


def test_rename_into_a_new_directory(ws: Workspace) -> None:
    ws.apply({"op": "rename", "path": "a.txt", "to": "moved/z.txt"})
    ctx = ws.context_dir
    assert not os.path.lexists(ctx / "a.txt")
    assert (ctx / "moved/z.txt").read_text() == "hello\n"
    assert mode_of(ctx / "moved") == 0o755


def test_setxattr_and_rmxattr(ws: Workspace) -> None:
    path = ws.context_dir / "a.txt"
    ws.apply({"op": "setxattr", "path": "a.txt", "name": "user.foo", "value": "bar"})
    assert os.getxattr(path, "user.foo") == b"bar"
    ws.apply({"op": "rmxattr", "path": "a.txt", "name": "user.foo"})
    assert "user.foo" not in os.listxattr(path)


@pytest.mark.parametrize("in_context", [True, False])
def test_dockerfile_op_rewrites_the_dockerfile(tmp_path: Path, in_context: bool) -> None:
    ws = Workspace(make_case(dockerfile_in_context=in_context), tmp_path)
    ws.apply({"op": "dockerfile", "content": "FROM scratch\nCOPY a /a\n"})
    assert ws.dockerfile_path.read_text() == "FROM scratch\nCOPY a /a\n"
    assert (ws.dockerfile_path.parent == ws.context_dir) == in_context


def test_sleep(ws: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    slept: list[float] = []
    monkeypatch.setattr(golden_support.time, "sleep", slept.append)
    ws.apply({"op": "sleep", "seconds": 0.02})
    assert slept == [0.02]


def test_unknown_op_kind_is_an_error(ws: Workspace) -> None:
    with pytest.raises(ValueError, match=r"synthetic.*'explode'"):
        ws.apply({"op": "explode", "path": "a.txt"})


def test_unknown_op_field_is_an_error(ws: Workspace) -> None:
    with pytest.raises(ValueError, match=r"synthetic.*'rm'.*recursve"):
        ws.apply({"op": "rm", "path": "src", "recursve": True})
    assert (ws.context_dir / "src").exists()


@pytest.mark.parametrize("path", ["../escape", "/etc/passwd", "@outside/../escape"])
def test_paths_may_not_leave_their_folder(ws: Workspace, path: str) -> None:
    with pytest.raises(ValueError, match="leaves"):
        ws.apply({"op": "write", "path": path, "content": "x"})


def test_apply_phase_applies_that_phase_in_order(tmp_path: Path) -> None:
    phases = [
        [{"op": "write", "path": "a.txt", "content": "1"}],
        [{"op": "write", "path": "a.txt", "content": "2"}, {"op": "rename", "path": "a.txt", "to": "b.txt"}],
    ]
    ws = Workspace(make_case(phases=phases, expected_by_phase=results_by_phase(2)), tmp_path)
    ws.apply_phase(0)
    assert (ws.context_dir / "a.txt").read_text() == "1"
    ws.apply_phase(1)
    assert not (ws.context_dir / "a.txt").exists()
    assert (ws.context_dir / "b.txt").read_text() == "2"


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.id)
def test_every_case_applies_all_its_phases(case: GoldenCase, tmp_path: Path) -> None:
    ws = Workspace(case, tmp_path)
    for index in range(len(case.phases)):
        ws.apply_phase(index)
    rewrites = [op["content"] for phase in case.phases for op in phase if op["op"] == "dockerfile"]
    assert ws.dockerfile_path.read_text() == (rewrites or [case.data["dockerfile"]])[-1]
