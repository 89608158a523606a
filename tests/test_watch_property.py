"""Property: whatever happens to the files of a registered context, the
daemon's answer (an incremental tree kept from inotify events) equals the
answer of a fresh scan of the same folder (a new engine, no history).

The daemon runs as a real subprocess on a real socket (the shared fixture);
the fresh scan is `LocalClient` over a state folder of its own, where the same
context path is registered for the first time.
"""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.daemon import answer, fresh_report

from ctxwatch_api.v1 import ctxwatch_pb2 as pb

DOCKERFILE = """\
FROM scratch
COPY . /all
COPY src/ /src/
COPY *.txt /txt/
RUN ["/bin/true"]
"""
DOCKERFILES = [
    DOCKERFILE,
    DOCKERFILE.replace("COPY src/ /src/", "COPY docs/ /docs/"),
    DOCKERFILE.replace("COPY *.txt /txt/", "COPY src/*.py keep.log /py/"),
    DOCKERFILE.replace("COPY src/ /src/", "COPY link /link/"),
    DOCKERFILE.replace('RUN ["/bin/true"]', 'RUN ["/bin/echo"]'),  # same size
]
IGNORES = [
    "",
    "*.log\n!keep.log\nnode_modules\n",
    "docs\n",
    "node_modules\nsrc/lib\n",
    "**/*.py\n!src/main.py\n",
]
INITIAL_FILES = {
    "a.txt": "a\n",
    "b.txt": "bee\n",
    "debug.log": "log\n",
    "keep.log": "keep\n",
    "src/main.py": "print('main')\n",
    "src/notes.txt": "notes\n",
    "src/lib/util.py": "def util(): pass\n",
    "docs/readme.md": "# readme\n",
    "node_modules/pkg.js": "module.exports = 1\n",
}

# Small, fixed name pools so that operations collide with each other.
FILES = [
    "a.txt",
    "b.txt",
    "c.txt",
    "debug.log",
    "keep.log",
    "src/main.py",
    "src/notes.txt",
    "src/lib/util.py",
    "src/new.py",
    "docs/readme.md",
    "node_modules/pkg.js",
    "new/deep/x.txt",
]
DIRS = ["src", "src/lib", "docs", "node_modules", "new", "new/deep", "lib2"]
LINKS = ["link", "src/link"]
ANY_PATH = FILES + DIRS + LINKS
# "alpha" and "gamma" have the same size: same-size edits must show too.
CONTENTS = [b"", b"alpha\n", b"gamma\n", b"alpha\r\n", b"z" * 5000]
MODES = [0o644, 0o755, 0o600]
LINK_TARGETS = ["a.txt", "src", "src/main.py", "missing", "../outside"]
TREES = [  # what a `git checkout` / `tar x` puts in a folder before it shows up in the context
    {"x.txt": b"x\n"},
    {"main.py": b"print('other')\n", "lib/util.py": b"def other(): pass\n"},
    {"deep/er/y.txt": b"y\n", "z.log": b"z\n"},
]

name_of = st.sampled_from
OPERATIONS = st.one_of(
    st.tuples(st.just("write"), name_of(FILES), name_of(CONTENTS)),
    st.tuples(st.just("append"), name_of(FILES)),
    st.tuples(st.just("truncate"), name_of(FILES)),
    st.tuples(st.just("touch"), name_of(FILES)),
    st.tuples(st.just("chmod"), name_of(FILES + DIRS), name_of(MODES)),
    st.tuples(st.just("rename"), name_of(FILES + LINKS), name_of(FILES + LINKS)),
    st.tuples(st.just("rename_dir"), name_of(DIRS), name_of(DIRS)),
    st.tuples(st.just("move_out"), name_of(ANY_PATH)),
    st.tuples(st.just("move_out"), name_of(DIRS)),  # folders leave more often: they hold more
    st.tuples(st.just("move_in"), name_of(ANY_PATH)),
    st.tuples(st.just("checkout"), name_of(DIRS), st.integers(0, len(TREES) - 1)),
    st.tuples(st.just("rm"), name_of(ANY_PATH)),
    st.tuples(st.just("symlink"), name_of(LINKS), name_of(LINK_TARGETS)),
    st.tuples(st.just("save_by_rename"), name_of(FILES), name_of(CONTENTS)),
    st.tuples(st.just("ignore"), st.integers(0, len(IGNORES) - 1)),
    st.tuples(st.just("specific_ignore"), st.integers(-1, len(IGNORES) - 1)),
    st.tuples(st.just("dockerfile"), st.integers(0, len(DOCKERFILES) - 1), st.booleans()),
    st.tuples(st.just("change_and_revert"), name_of(FILES), name_of(CONTENTS)),
    st.tuples(st.just("query")),  # compare mid-sequence too (the tree is then loaded)
)
SEQUENCES = st.lists(OPERATIONS, min_size=1, max_size=12)


# -- the two answers -------------------------------------------------------------------


def assert_matches_fresh_scan(daemon, name: str, context: Path, built_keys: set[str], history: list) -> None:
    [report] = daemon.client.reports([pb.ContextRef(name=name)])
    fresh = fresh_report(context)
    assert answer(report) == answer(fresh), f"the daemon's answer differs from a fresh scan after {history}"
    for step in report.steps:
        if step.key in built_keys:
            assert step.status == pb.STEP_STATUS_CACHED, (
                f"line {step.line} has the key recorded by MarkBuilt but is {pb.StepStatus.Name(step.status)}"
            )
        else:
            assert step.status != pb.STEP_STATUS_CACHED, f"line {step.line} is cached with a key no build recorded"
    assert report.all_cached == all(s.key in built_keys for s in report.steps)


# -- filesystem operations ---------------------------------------------------------------


def write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


def remove(path: Path) -> None:
    if path.is_symlink() or not path.is_dir():
        path.unlink()
    else:
        shutil.rmtree(path)


class Workspace:
    """A context folder and, next to it (outside the context), a stash folder."""

    def __init__(self, base: Path) -> None:
        self.context = base / "ctx"
        self.stash = base / "stash"
        self.stash.mkdir(parents=True)
        self.stashed: list[Path] = []
        self.counter = 0
        for rel, text in INITIAL_FILES.items():
            write(self.context / rel, text.encode())
        (self.context / "Dockerfile").write_text(DOCKERFILE)
        (self.context / ".dockerignore").write_text(IGNORES[1])

    def fresh_stash_path(self) -> Path:
        self.counter += 1
        return self.stash / f"item-{self.counter}"

    def apply(self, op: tuple) -> None:
        """Run one operation; one that the current state makes impossible
        (a parent is a file, a folder is not empty, ...) changes nothing."""
        try:
            getattr(self, "op_" + op[0])(*op[1:])
        except OSError:
            pass

    def op_write(self, rel: str, data: bytes) -> None:
        write(self.context / rel, data)

    def op_append(self, rel: str) -> None:
        with open(self.context / rel, "ab") as f:
            f.write(b"more\n")

    def op_truncate(self, rel: str) -> None:
        os.truncate(self.context / rel, 0)

    def op_touch(self, rel: str) -> None:
        st_ = os.lstat(self.context / rel)
        os.utime(self.context / rel, ns=(st_.st_atime_ns, st_.st_mtime_ns + 7_000_000_000))

    def op_chmod(self, rel: str, mode: int) -> None:
        os.chmod(self.context / rel, mode)

    def op_rename(self, src: str, dst: str) -> None:
        (self.context / dst).parent.mkdir(parents=True, exist_ok=True)
        os.rename(self.context / src, self.context / dst)

    def op_rename_dir(self, src: str, dst: str) -> None:
        (self.context / dst).parent.mkdir(parents=True, exist_ok=True)
        os.rename(self.context / src, self.context / dst)

    def op_move_out(self, rel: str) -> None:
        target = self.fresh_stash_path()
        os.rename(self.context / rel, target)
        self.stashed.append(target)

    def op_move_in(self, rel: str) -> None:
        if not self.stashed:
            return
        (self.context / rel).parent.mkdir(parents=True, exist_ok=True)
        os.rename(self.stashed[-1], self.context / rel)
        self.stashed.pop()

    def op_checkout(self, rel: str, tree: int) -> None:
        staging = self.fresh_stash_path()
        for name, data in TREES[tree].items():
            write(staging / name, data)
        dest = self.context / rel
        if dest.exists() or dest.is_symlink():
            remove(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.rename(staging, dest)

    def op_rm(self, rel: str) -> None:
        remove(self.context / rel)

    def op_symlink(self, rel: str, target: str) -> None:
        link = self.context / rel
        tmp = link.parent / f".{link.name}.tmp-link"
        os.symlink(target, tmp)
        os.replace(tmp, link)

    def op_save_by_rename(self, rel: str, data: bytes) -> None:
        path = self.context / rel
        tmp = path.parent / f".{path.name}.swp"
        write(tmp, data)
        os.replace(tmp, path)

    def op_ignore(self, index: int) -> None:
        (self.context / ".dockerignore").write_text(IGNORES[index])

    def op_specific_ignore(self, index: int) -> None:
        path = self.context / "Dockerfile.dockerignore"
        if index < 0:
            if path.exists():
                path.unlink()
        else:
            path.write_text(IGNORES[index])

    def op_dockerfile(self, index: int, by_rename: bool) -> None:
        if by_rename:
            self.op_save_by_rename("Dockerfile", DOCKERFILES[index].encode())
        else:
            (self.context / "Dockerfile").write_text(DOCKERFILES[index])

    def op_change_and_revert(self, rel: str, data: bytes) -> None:
        path = self.context / rel
        before = path.read_bytes()
        write(path, data)  # git stash ...
        write(path, before)  # ... git stash pop


# -- the property ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def workspaces(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("watch-property")


@settings(
    max_examples=35,
    deadline=None,
    database=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(operations=SEQUENCES)
def test_daemon_answer_equals_a_fresh_scan_after_any_file_operations(shared_daemon, workspaces, operations):
    base = workspaces / uuid.uuid4().hex[:12]
    ws = Workspace(base)
    name = f"prop-{base.name}"
    shared_daemon.client.register(str(ws.context), name=name)
    try:
        built = shared_daemon.client.mark_built(pb.ContextRef(name=name))
        assert built.report.all_cached and not built.report.error
        built_keys = {s.key for s in built.report.steps}
        assert answer(built.report) == answer(fresh_report(ws.context))
        done: list[tuple] = []
        for op in operations:
            done.append(op)
            if op[0] == "query":
                assert_matches_fresh_scan(shared_daemon, name, ws.context, built_keys, done)
            else:
                ws.apply(op)
        assert_matches_fresh_scan(shared_daemon, name, ws.context, built_keys, done)
    finally:
        shared_daemon.client.unregister(pb.ContextRef(name=name))
        shutil.rmtree(base, ignore_errors=True)


# -- minimised cases -------------------------------------------------------------------------
# Found while writing the property: a folder moved out of the context (an
# unpaired IN_MOVED_FROM, so no events for its files) and a new folder under
# the same name before the next query; the daemon kept the old folder's files.


@pytest.mark.parametrize("recreate", ["mkdir", "move_in_other_tree"])
def test_folder_moved_out_of_the_context_and_recreated_before_the_next_query(shared_daemon, tmp_path, recreate):
    """`mv ctx/src elsewhere && mkdir ctx/src` (or moving another tree in) between
    two queries: the moved-out folder's files must not stay in the daemon's tree."""
    ws = Workspace(tmp_path / "ws")
    name = f"moved-out-{uuid.uuid4().hex[:10]}"
    shared_daemon.client.register(str(ws.context), name=name)
    try:
        built = shared_daemon.client.mark_built(pb.ContextRef(name=name))
        built_keys = {s.key for s in built.report.steps}
        ws.apply(("move_out", "src"))  # the folder leaves the watched tree
        assert not (ws.context / "src").exists()
        if recreate == "mkdir":
            (ws.context / "src").mkdir()
            (ws.context / "src" / "other.py").write_text("other\n")
        else:
            ws.apply(("checkout", "src", 0))
        assert sorted(os.listdir(ws.context / "src")) == (["other.py"] if recreate == "mkdir" else ["x.txt"])
        assert_matches_fresh_scan(shared_daemon, name, ws.context, built_keys, ["move_out src", recreate])
    finally:
        shared_daemon.client.unregister(pb.ContextRef(name=name))
