"""Step cache keys, modelled on BuildKit's build graph (LLB), not on lines.

A step's key covers its expanded instruction (spec), the key of the step it
runs on (its parent), and the content checksum of what it reads: context
files (COPY/ADD sources, bind mounts) and files of other stages (COPY --from,
mount from=). Three BuildKit rules shape the chain:

- `COPY --link` copies onto an empty layer that is then merged: the copy
  itself does not depend on its parent, only the merged result does.
- Files read from another stage are checksummed by content, so a re-run
  upstream step that produces the same files is still a hit. The daemon
  cannot know those files, so each step also gets a *shape*: its key with
  other stages' output replaced by a placeholder. A recorded shape lets the
  report say "depends on the output of a re-run step" instead of guessing.
- Metadata instructions are not steps; their effect reaches later steps
  through the spec (a RUN's environment, a WORKDIR's path).
"""

from __future__ import annotations

import hashlib
import posixpath
from collections.abc import Callable
from dataclasses import dataclass, field

from ..context.ignore import filepath_match, has_wildcard
from ..context.nodes import Child, digest_of, encode_selection
from ..context.records import KIND_DIR, KIND_SYMLINK
from ..context.tree import join
from ..context.view import ContextReadError, ContextView, SentNode
from ..dockerfile.plan import Plan, Step, spec_bytes

MAX_SYMLINK_HOPS = 40
STAGE_OUTPUT_PLACEHOLDER = b"stage-output"


@dataclass(frozen=True)
class SourceInput:
    """One context source of a step: the path as written (cleaned), the path
    it resolved to, and the digest of what it selects."""

    source: str
    resolved: str  # context path ("" is the root); unused for a wildcard
    digest: bytes
    node: SentNode | None = None  # what a plain path selects
    selection: bytes = b""  # a wildcard's listing of its matches
    wildcard: bool = False
    matches: tuple[str, ...] = ()  # wildcard matches, context paths

    @property
    def blob(self) -> bytes:
        """The selected node's bytes, made only when a build is recorded or explained."""
        return self.selection if self.wildcard else self.node.blob


@dataclass
class StepKey:
    step: Step
    index: int  # position in the report
    key: bytes  # exact: equal to a recorded key means BuildKit has it
    shape: bytes  # what a re-run step produces replaced by a placeholder
    parent: int | None  # the report index of the step it runs on
    output_steps: tuple[int, ...] = ()  # steps of other stages whose unknowable output it reads
    inputs: list[SourceInput] = field(default_factory=list)
    view: ContextView | None = None  # the view its inputs were read from
    error: str = ""


@dataclass(frozen=True)
class _Write:
    """What a step leaves under `path` in its stage's filesystem."""

    path: str  # absolute, normalised; "/" for steps that may write anywhere
    identity: bytes
    opaque_step: int | None  # a step whose output cannot be known (RUN, base image)


@dataclass
class _StageState:
    fs: bytes
    shape: bytes
    last: int | None
    writes: tuple[_Write, ...]


def _h(*parts: bytes) -> bytes:
    h = hashlib.sha256()
    for part in parts:
        h.update(len(part).to_bytes(8, "big"))
        h.update(part)
    return h.digest()


def stage_base_key(base: str) -> bytes:
    return _h(b"scratch") if base.lower() == "scratch" else _h(b"image", base.encode())


def compute_keys(plan: Plan, view_for: Callable[[tuple[str, ...]], ContextView]) -> list[StepKey]:
    """Keys of every step of the plan, in report order.

    `view_for(excludes)` gives the context view with extra exclude patterns
    (COPY --exclude); `()` is the plain .dockerignore view.
    """
    keys: list[StepKey] = []
    states: dict[int, _StageState] = {}
    for stage in plan.stages:
        if stage.base_stage is not None:
            state = _StageState(**vars(states[stage.base_stage]))
        else:
            base = stage_base_key(stage.base)
            state = _StageState(base, base, None, ())
        for step in stage.steps:
            view = view_for(tuple(_scoped_excludes(step))) if step.sources else None
            entry = StepKey(step, len(keys), b"", b"", state.last, view=view)
            content_exact, content_shape = _content(step, entry, view, states)
            if step.keyword == "from":
                entry.key = entry.shape = state.fs
                state.writes += (_Write("/", state.fs, entry.index),)
            elif step.link:
                # The copy happens on an empty layer: it is its own cache entry.
                entry.key, entry.shape = _h(b"link", content_exact), _h(b"link", content_shape)
                state.fs, state.shape = _h(b"merge", state.fs, entry.key), _h(b"merge", state.shape, entry.shape)
            else:
                entry.key, entry.shape = _h(state.fs, content_exact), _h(state.shape, content_shape)
                state.fs, state.shape = entry.key, entry.shape
            if step.keyword == "run":
                state.writes += (_Write("/", entry.key, entry.index),)
            elif step.keyword != "from":
                dest = step.spec.get("dest") or step.spec.get("path", "/")
                state.writes += (_Write(posixpath.normpath(dest), content_exact, None),)
            keys.append(entry)
            state.last = entry.index
        states[stage.index] = state
    return keys


def _content(
    step: Step, entry: StepKey, view: ContextView | None, states: dict[int, _StageState]
) -> tuple[bytes, bytes]:
    """What the step reads, hashed: exactly, and with the output of steps
    that cannot be known (RUN, remote images) replaced by a placeholder."""
    parts = [step.keyword.encode(), spec_bytes(step.spec)]
    if step.error:
        entry.error = step.error
    if view is not None:
        try:
            entry.inputs = [select_source(view, src) for src in step.sources]
            parts += [i.digest for i in entry.inputs]
        except (SourceNotFound, ContextReadError) as e:
            entry.error = str(e)
            parts.append(str(e).encode())
    exact, shape, opaque = list(parts), list(parts), []
    for stage_index, path in step.stage_reads:
        for write in _writes_under(states[stage_index].writes, path):
            exact.append(write.identity)
            if write.opaque_step is None:
                shape.append(write.identity)
            else:
                shape.append(STAGE_OUTPUT_PLACEHOLDER)
                opaque.append(write.opaque_step)
    entry.output_steps = tuple(dict.fromkeys(opaque))
    return _h(*exact), _h(*shape)


def _writes_under(writes: tuple[_Write, ...], path: str) -> list[_Write]:
    """The writes that can affect the files under `path` (BuildKit checksums
    only the selected paths of another stage, by content)."""
    path = posixpath.normpath(_wildcard_free_prefix(path))
    return [w for w in writes if _overlaps(w.path, path)]


def _overlaps(a: str, b: str) -> bool:
    a, b = a.rstrip("/") + "/", b.rstrip("/") + "/"
    return a.startswith(b) or b.startswith(a)


def _wildcard_free_prefix(path: str) -> str:
    parts = []
    for part in path.split("/"):
        if has_wildcard(part):
            break
        parts.append(part)
    return "/".join(parts) or "/"


def _scoped_excludes(step: Step) -> list[str]:
    """COPY --exclude patterns are relative to each source; the view matches
    from the context root, so they are re-rooted at the (single) source."""
    if not step.excludes:
        return []
    roots = {src if src != "." else "" for src in step.sources}
    root = roots.pop() if len(roots) == 1 and not has_wildcard(next(iter(step.sources))) else ""
    scoped = []
    for pattern in step.excludes:
        negate = pattern.startswith("!")
        body = pattern[1:] if negate else pattern
        body = posixpath.join(root, body) if root else body
        scoped.append(("!" if negate else "") + body)
    return scoped


class SourceNotFound(Exception):
    def __init__(self, source: str) -> None:
        super().__init__(f'"/{source}": not found')
        self.source = source


def select_source(view: ContextView, source: str) -> SourceInput:
    """Resolve one COPY/ADD/bind source the way BuildKit checksums it."""
    if has_wildcard(source):
        # A wildcard that matches nothing copies nothing: BuildKit's frontend
        # allows empty wildcards (unlike a missing plain path).
        matches = _glob(view, source)
        children = []
        for rel in matches:
            node = view.node(rel)
            children.append(Child(rel, node.kind, node.digest))
        blob = encode_selection(children)
        return SourceInput(source, "", digest_of(blob), selection=blob, wildcard=True, matches=tuple(matches))
    rel = "" if source == "." else source
    resolved = _follow_symlinks(view, rel)
    if resolved is not None:
        view.prefetch(resolved)
    node = view.node(resolved) if resolved is not None else None
    if node is None:
        raise SourceNotFound(source)
    return SourceInput(source, resolved, node.digest, node=node)


def _follow_symlinks(view: ContextView, rel: str) -> str | None:
    """Resolve symlinks in every part of a source path, inside the context:
    an absolute target is taken from the context root and `..` cannot climb
    out of it (BuildKit's follow-links walk). None when it loops."""
    pending = [p for p in rel.split("/") if p]
    resolved: list[str] = []
    hops = 0
    while pending:
        path = "/".join([*resolved, pending[0]])
        entry = view.entry(path)
        if entry is None:
            return "/".join([*resolved, *pending])  # missing: the caller says "not found"
        if entry.kind != KIND_SYMLINK:
            resolved.append(pending.pop(0))
            continue
        hops += 1
        node = view.node(path)
        if node is None or hops > MAX_SYMLINK_HOPS:
            return None
        target = node.node.record.link_target
        base = "/" if target.startswith("/") else "/" + "/".join(resolved)
        target_parts = posixpath.normpath(posixpath.join(base, target)).lstrip("/").split("/")
        pending = [p for p in target_parts if p and p != "."] + pending[1:]
        resolved = []
    return "/".join(resolved)


def _glob(view: ContextView, pattern: str) -> list[str]:
    """Context paths matching a wildcard source, component by component."""
    current = [""]
    for part in pattern.split("/"):
        if not part or part == ".":
            continue
        found = []
        for base in current:
            if has_wildcard(part):
                node = view.node(base)
                if node is None or node.kind != KIND_DIR:
                    continue
                found += [join(base, c.name) for c in node.node.children if filepath_match(part, c.name)]
            elif view.node(join(base, part)) is not None:
                found.append(join(base, part))
        current = found
    return sorted(current)
