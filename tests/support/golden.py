"""The golden cases observed on a real BuildKit daemon, and a way to lay them out on disk.

The format is defined in ``GOLDEN_DIR / "README.md"``. Anything this module does not
understand (an unknown key, op kind or op field) raises ValueError instead of being
ignored: a silently skipped change would make a case test something else.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path, PurePosixPath
from typing import Any, ClassVar

GOLDEN_DIR: Path = Path(__file__).resolve().parent.parent / "data" / "golden"

CASE_KEYS = frozenset(
    {
        "id",
        "question",
        "observed_with",
        "files",
        "outside_files",
        "dockerfile",
        "dockerfile_in_context",
        "dockerfile_name",
        "dockerfile_dir_files",
        "build_args",
        "build_args_after",
        "target",
        "frontend_opts",
        "secrets",
        "secrets_after",
        "steps",
        "phases",
        "phase_labels",
        "expected",
        "expected_by_phase",
        "observed_reusing_context",
        "build_fails",
        "error",
    }
)
PHASE_KEYS = frozenset({"steps", "build_args"})
FRONTEND_OPT_KEYS = frozenset({"no-cache"})
# At most one of these says what a file spec creates; none means a regular file.
FILE_KINDS = ("content", "content_b64", "symlink", "hardlink", "dir")
FILE_KEYS = frozenset(FILE_KINDS) | {"mode", "uid", "gid", "xattrs", "mtime"}

DEFAULT_FILE_MODE = 0o644
DEFAULT_DIR_MODE = 0o755
OUTSIDE_PREFIX = "@outside"
# Steps tried by `touch` when "now" is not stored as a new mtime (coarse timestamps).
TOUCH_BUMPS_NS = (1_000_000, 1_000_000_000, 2_000_000_000)


@dataclass(frozen=True)
class GoldenStep:
    """One entry of "expected": a step BuildKit ran and whether it came from the cache."""

    stage: str
    line: int
    instruction: str
    cached: bool
    error: str | None
    link_rebased: bool


@dataclass(frozen=True)
class GoldenBuild:
    """What the build after one phase must show."""

    label: str
    build_args: dict[str, str]
    no_cache: bool
    no_cache_filter: tuple[str, ...]
    target: str | None
    build_fails: bool
    error: str | None
    expected: tuple[GoldenStep, ...]
    reusing_context: tuple[GoldenStep, ...] | None


@dataclass(frozen=True)
class GoldenCase:
    """One case file: its first build, its phases, and the build after each phase."""

    id: str
    question: str
    data: dict
    first_build_args: dict[str, str]
    first_target: str | None
    phases: tuple[tuple[dict, ...], ...]
    builds: tuple[GoldenBuild, ...]


def load_cases() -> list[GoldenCase]:
    """Every case in GOLDEN_DIR, sorted by id; a missing or empty folder is an error."""
    if not GOLDEN_DIR.is_dir():
        raise FileNotFoundError(f"golden folder {GOLDEN_DIR} is missing")
    files = sorted(GOLDEN_DIR.glob("*.json"))
    if not files:
        raise FileNotFoundError(f"golden folder {GOLDEN_DIR} has no *.json case")
    cases = [parse_case(json.loads(file.read_text(encoding="utf-8"))) for file in files]
    ids = [case.id for case in cases]
    if len(set(ids)) != len(ids):
        raise ValueError(f"duplicate case ids in {GOLDEN_DIR}")
    return sorted(cases, key=lambda case: case.id)


def parse_case(data: dict) -> GoldenCase:
    """A GoldenCase from the raw json of one case."""
    case_id = data["id"]
    _reject_unknown(case_id, "case keys", data, CASE_KEYS)
    phases, phase_args = _split_phases(case_id, data)
    first_args = dict(data.get("build_args", {}))
    return GoldenCase(
        id=case_id,
        question=data.get("question", ""),
        data=data,
        first_build_args=first_args,
        first_target=data.get("target"),
        phases=phases,
        builds=_builds(case_id, data, first_args, phase_args),
    )


def _reject_unknown(case_id: str, what: str, given: Mapping, known: frozenset[str]) -> None:
    unknown = set(given) - known
    if unknown:
        raise ValueError(f"case {case_id}: unknown {what} {sorted(unknown)}")


def _split_phases(case_id: str, data: dict) -> tuple[tuple[tuple[dict, ...], ...], list[dict]]:
    """The ops of each phase and the build args each phase adds ("steps" is one phase)."""
    if ("steps" in data) == ("phases" in data):
        raise ValueError(f"case {case_id}: needs exactly one of 'steps' and 'phases'")
    raw_phases = [data["steps"]] if "steps" in data else data["phases"]
    ops: list[tuple[dict, ...]] = []
    args: list[dict] = []
    for phase in raw_phases:
        if isinstance(phase, dict):
            _reject_unknown(case_id, "phase keys", phase, PHASE_KEYS)
            ops.append(tuple(phase["steps"]))
            args.append(phase.get("build_args", {}))
        else:
            ops.append(tuple(phase))
            args.append({})
    return tuple(ops), args


def _builds(case_id: str, data: dict, first_args: dict[str, str], phase_args: list[dict]) -> tuple[GoldenBuild, ...]:
    # Every later build gets build_args_after; phase build args pile up from phase to phase.
    args = {**first_args, **data.get("build_args_after", {})}
    no_cache, no_cache_filter = _no_cache(case_id, data)
    results = _results(case_id, data, len(phase_args))
    builds = []
    for index, (added_args, result) in enumerate(zip(phase_args, results, strict=True)):
        args = {**args, **added_args}
        is_last = index == len(phase_args) - 1
        builds.append(
            GoldenBuild(
                label=_label(data, index),
                build_args=dict(args),
                no_cache=no_cache,
                no_cache_filter=no_cache_filter,
                target=data.get("target"),
                build_fails=result.get("build_fails", False),
                error=result.get("error"),
                expected=_steps(result["expected"]),
                reusing_context=_reusing_context(data) if is_last else None,
            )
        )
    return tuple(builds)


def _results(case_id: str, data: dict, phase_count: int) -> list[dict]:
    """The outcome of the build after each phase; the last one is the case's top level."""
    last = {key: data[key] for key in ("expected", "build_fails", "error") if key in data}
    by_phase = data.get("expected_by_phase")
    if by_phase is None:
        if phase_count != 1:
            raise ValueError(f"case {case_id}: {phase_count} phases need expected_by_phase")
        return [last]
    if [entry["after_phase"] for entry in by_phase] != list(range(1, phase_count + 1)):
        raise ValueError(f"case {case_id}: expected_by_phase does not list phases 1..{phase_count}")
    final = by_phase[-1]
    if final["expected"] != data["expected"] or final.get("build_fails", False) != data.get("build_fails", False):
        raise ValueError(f"case {case_id}: last expected_by_phase differs from expected")
    return [*by_phase[:-1], last]


def _label(data: dict, index: int) -> str:
    labels = data.get("phase_labels") or [entry.get("label", "") for entry in data.get("expected_by_phase", [])]
    return labels[index] if index < len(labels) else ""


def _no_cache(case_id: str, data: dict) -> tuple[bool, tuple[str, ...]]:
    """(--no-cache, --no-cache-filter stages) from frontend_opts."""
    opts = data.get("frontend_opts", {})
    _reject_unknown(case_id, "frontend_opts", opts, FRONTEND_OPT_KEYS)
    if "no-cache" not in opts:
        return False, ()
    stages = tuple(name.strip() for name in opts["no-cache"].split(",") if name.strip())
    return not stages, stages


def _steps(entries: Sequence[dict]) -> tuple[GoldenStep, ...]:
    return tuple(
        GoldenStep(
            stage=str(entry["stage"]),  # stages without a name are given as their index
            line=entry["line"],
            instruction=entry["instruction"],
            cached=entry["cached"],
            error=entry.get("error"),
            link_rebased=entry.get("link_rebased", False),
        )
        for entry in entries
    )


def _reusing_context(data: dict) -> tuple[GoldenStep, ...] | None:
    observed = data.get("observed_reusing_context")
    return None if observed is None else _steps(observed)


class Workspace:
    """A case laid out in a temporary folder: <root>/ctx (the context), <root>/outside, and,
    when the Dockerfile is not in the context, <root>/dockerfile-dir holding it."""

    def __init__(self, case: GoldenCase, root: Path) -> None:
        self.case = case
        data = case.data
        self.context_dir = root / "ctx"
        self.outside_dir = root / "outside"
        in_context = data.get("dockerfile_in_context", True)
        dockerfile_dir = self.context_dir if in_context else root / "dockerfile-dir"
        self.dockerfile_path = dockerfile_dir / data.get("dockerfile_name", "Dockerfile")
        root.mkdir(parents=True, exist_ok=True)
        for directory in (self.context_dir, self.outside_dir, dockerfile_dir):
            _make_dirs(directory)
        # The Dockerfile goes first so that file specs (an mtime on its folder) win.
        _write_file(self.dockerfile_path, data["dockerfile"].encode(), DEFAULT_FILE_MODE)
        self._lay_out(data.get("files", {}), self.context_dir)
        self._lay_out(data.get("outside_files", {}), self.outside_dir)
        self._lay_out(data.get("dockerfile_dir_files", {}), dockerfile_dir)

    def apply_phase(self, index: int) -> None:
        """Apply the ops of phase `index` (0-based) in order."""
        for op in self.case.phases[index]:
            self.apply(op)

    def apply(self, op: dict) -> None:
        """Apply one change op as the README defines it."""
        kind = op.get("op")
        if kind not in self._OPS:
            raise ValueError(f"case {self.case.id}: unknown op kind {kind!r} in {op}")
        fields, handler = self._OPS[kind]
        _reject_unknown(self.case.id, f"{kind!r} op fields", op, fields | {"op"})
        handler(self, op)

    # --- layout of the first build

    def _lay_out(self, specs: Mapping[str, Any], base: Path) -> None:
        entries = [(self._path(name, base), _as_spec(spec)) for name, spec in specs.items()]
        for _, spec in entries:
            _reject_unknown(self.case.id, "file spec keys", spec, FILE_KEYS)
        # Hard links last: their targets must exist first.
        for path, spec in sorted(entries, key=lambda entry: "hardlink" in entry[1]):
            self._create(path, spec, base)
        # Metadata last: creating an entry changes its folder's mtime.
        for path, spec in entries:
            _set_metadata(path, spec)

    def _create(self, path: Path, spec: dict, base: Path) -> None:
        kind = self._file_kind(spec)
        if kind == "dir":
            _make_dirs(path)
        elif kind == "symlink":
            _make_dirs(path.parent)
            os.symlink(self._expand(spec["symlink"]), path)
        elif kind == "hardlink":
            _make_dirs(path.parent)
            os.link(self._path(spec["hardlink"], base), path)
        else:
            _write_file(path, self._payload(spec), DEFAULT_FILE_MODE)

    def _file_kind(self, spec: dict) -> str:
        kinds = [kind for kind in FILE_KINDS if kind in spec]
        if len(kinds) > 1:
            raise ValueError(f"case {self.case.id}: file spec {spec} combines {kinds}")
        return kinds[0] if kinds else "content"

    # --- paths

    def _path(self, name: str, base: Path | None = None) -> Path:
        """Where `name` lives: relative to `base` (the context by default) or "@outside/x"."""
        if name == OUTSIDE_PREFIX or name.startswith(OUTSIDE_PREFIX + "/"):
            base, name = self.outside_dir, name[len(OUTSIDE_PREFIX) :].lstrip("/")
        relative = PurePosixPath(name)
        # Tests run as root: a case must never reach outside its temporary folder.
        if relative.is_absolute() or ".." in relative.parts:
            raise ValueError(f"case {self.case.id}: path {name!r} leaves its folder")
        return (base or self.context_dir) / relative

    def _expand(self, target: str) -> str:
        return target.replace("{CTX}", str(self.context_dir)).replace("{OUTSIDE}", str(self.outside_dir))

    def _payload(self, spec: dict) -> bytes:
        if "content" in spec and "content_b64" in spec:
            raise ValueError(f"case {self.case.id}: both content and content_b64 in {spec}")
        if "content_b64" in spec:
            return base64.b64decode(spec["content_b64"])
        return spec.get("content", "").encode()

    # --- change ops

    def _write(self, op: dict) -> None:
        path = self._path(op["path"])
        before = path.stat() if path.exists() else None
        if op.get("keep_mtime") and before is None:
            raise ValueError(f"case {self.case.id}: keep_mtime on a new file in {op}")
        _make_dirs(path.parent)
        with path.open("ab" if op.get("append") else "wb") as file:
            file.write(self._payload(op))
        if "mode" in op:
            os.chmod(path, _mode(op["mode"]))
        elif before is None:
            os.chmod(path, DEFAULT_FILE_MODE)
        if op.get("keep_mtime"):
            os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))

    def _touch(self, op: dict) -> None:
        path = self._path(op["path"])
        if not path.exists():
            _write_file(path, b"", DEFAULT_FILE_MODE)
        if "mtime" in op:
            ns = _epoch_ns(op["mtime"])
            os.utime(path, ns=(ns, ns))
        else:
            _touch_later(path)

    def _chmod(self, op: dict) -> None:
        os.chmod(self._path(op["path"]), _mode(op["mode"]))

    def _chown(self, op: dict) -> None:
        os.lchown(self._path(op["path"]), op.get("uid", -1), op.get("gid", -1))

    def _rm(self, op: dict) -> None:
        _remove(self._path(op["path"]), recursive=op.get("recursive", False))

    def _mkdir(self, op: dict) -> None:
        path = self._path(op["path"])
        _make_dirs(path.parent)
        path.mkdir()
        os.chmod(path, _mode(op["mode"]) if "mode" in op else DEFAULT_DIR_MODE)

    def _symlink(self, op: dict) -> None:
        path = self._path(op["path"])
        _replaceable(path)
        os.symlink(self._expand(op["target"]), path)

    def _hardlink(self, op: dict) -> None:
        path = self._path(op["path"])
        _replaceable(path)
        os.link(self._path(op["target"]), path)

    def _rename(self, op: dict) -> None:
        destination = self._path(op["to"])
        _make_dirs(destination.parent)
        os.rename(self._path(op["path"]), destination)

    def _setxattr(self, op: dict) -> None:
        os.setxattr(self._path(op["path"]), op["name"], op["value"].encode())

    def _rmxattr(self, op: dict) -> None:
        os.removexattr(self._path(op["path"]), op["name"])

    def _dockerfile(self, op: dict) -> None:
        self.dockerfile_path.write_bytes(op["content"].encode())

    def _sleep(self, op: dict) -> None:
        time.sleep(op["seconds"])

    # op kind -> (the fields it may carry besides "op", its handler)
    _OPS: ClassVar[dict[str, tuple[frozenset[str], Callable[[Workspace, dict], None]]]] = {
        "write": (frozenset({"path", "content", "content_b64", "append", "keep_mtime", "mode"}), _write),
        "touch": (frozenset({"path", "mtime"}), _touch),
        "chmod": (frozenset({"path", "mode"}), _chmod),
        "chown": (frozenset({"path", "uid", "gid"}), _chown),
        "rm": (frozenset({"path", "recursive"}), _rm),
        "mkdir": (frozenset({"path", "mode"}), _mkdir),
        "symlink": (frozenset({"path", "target"}), _symlink),
        "hardlink": (frozenset({"path", "target"}), _hardlink),
        "rename": (frozenset({"path", "to"}), _rename),
        "setxattr": (frozenset({"path", "name", "value"}), _setxattr),
        "rmxattr": (frozenset({"path", "name"}), _rmxattr),
        "dockerfile": (frozenset({"content"}), _dockerfile),
        "sleep": (frozenset({"seconds"}), _sleep),
    }


def _as_spec(spec: str | dict) -> dict:
    """A file spec as a dict: a bare string is the file's content."""
    return spec if isinstance(spec, dict) else {"content": spec}


def _set_metadata(path: Path, spec: dict) -> None:
    if "mode" in spec:
        os.chmod(path, _mode(spec["mode"]))
    if "uid" in spec or "gid" in spec:
        os.lchown(path, spec.get("uid", -1), spec.get("gid", -1))
    for name, value in spec.get("xattrs", {}).items():
        os.setxattr(path, name, value.encode())
    if "mtime" in spec:  # last: nothing after it may touch the entry
        ns = _epoch_ns(spec["mtime"])
        os.utime(path, ns=(ns, ns), follow_symlinks=False)


def _mode(mode: str) -> int:
    """An octal mode string ("0755") as a number."""
    return int(mode, 8)


def _epoch_ns(epoch: float) -> int:
    # Through the decimal text: 1234567890.25 * 1e9 in floats is off by 128 ns.
    return round(Decimal(str(epoch)) * 1_000_000_000)


def _make_dirs(path: Path) -> None:
    """Create `path` and its missing parents, each with exactly DEFAULT_DIR_MODE."""
    if path.is_dir():
        return
    _make_dirs(path.parent)
    path.mkdir()
    os.chmod(path, DEFAULT_DIR_MODE)  # mkdir's mode is filtered by the umask


def _write_file(path: Path, content: bytes, mode: int) -> None:
    _make_dirs(path.parent)
    path.write_bytes(content)
    os.chmod(path, mode)  # after writing, so the umask does not interfere


def _remove(path: Path, recursive: bool) -> None:
    if path.is_dir() and not path.is_symlink():
        if recursive:
            shutil.rmtree(path)
        else:
            path.rmdir()
    else:
        path.unlink()


def _replaceable(path: Path) -> None:
    """Make room for a new link at `path`: its folder exists, nothing sits at `path`."""
    _make_dirs(path.parent)
    if os.path.lexists(path):
        _remove(path, recursive=True)


def _touch_later(path: Path) -> None:
    """Set the mtime to now, and in any case to something other than before."""
    old = path.stat().st_mtime_ns
    # A coarse-timestamp filesystem may store "now" as the old value: step past it.
    for candidate in (time.time_ns(), *(old + bump for bump in TOUCH_BUMPS_NS)):
        os.utime(path, ns=(candidate, candidate))
        if path.stat().st_mtime_ns != old:
            return
    raise OSError(f"cannot give {path} a new mtime")
