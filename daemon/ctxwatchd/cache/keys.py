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

import bisect
import hashlib
import posixpath
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from ..budget import check
from ..context.ignore import PathMatcher, filepath_match, has_wildcard
from ..context.nodes import Child, digest_of, encode_selection
from ..context.records import KIND_DIR, KIND_SYMLINK
from ..context.tree import join
from ..context.view import ContextReadError, ContextView, SentNode
from ..dockerfile.plan import Plan, Step, spec_bytes
from ..limits import MAX_EXCLUDE_SETS

MAX_SYMLINK_HOPS = 40
COMPUTING_KEYS = "computing the step keys"
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
    key_digest: bytes = b""  # what BuildKit's cache key holds for it (no path above what it selects)

    @property
    def blob(self) -> bytes:
        """The selected node's bytes, made only when a build is recorded or explained."""
        return self.selection if self.wildcard or self.node is None else self.node.blob


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
    unsent_folder: str = ""  # an empty wildcard's folder nothing sends: an error unless the builder kept it
    maybe_sent: bool = False  # ...but a `**` of another source may make BuildKit send it


# How a step's write is known, for a later COPY --from or mount from= that reads it.
OPAQUE = "opaque"  # may have written anything anywhere: RUN, a base image, a remote source
WHOLE = "whole"  # known content at or below `dest`, not known file by file
ENTRY = "entry"  # creates the folder `dest` itself (WORKDIR)
CONTEXT = "context"  # the context's `source` (file or folder contents) placed at `dest`
STAGE = "stage"  # another stage's files at `source` placed at `dest`


@dataclass(frozen=True)
class _Write:
    """What one step leaves in its stage's filesystem."""

    kind: str
    dest: str  # absolute, normalised ("/" for OPAQUE)
    step: int  # the report index of the step that writes
    identity: bytes = b""  # OPAQUE, WHOLE, ENTRY
    blame: int | None = None  # WHOLE built from unknowable output: the step to blame
    view: ContextView | None = None  # CONTEXT
    source: str = ""  # CONTEXT: context path; STAGE: absolute path in the source stage
    writes: Writes | None = None  # STAGE: the source stage's writes
    flags: bytes = b""  # --chmod / --chown applied on the way
    mode_set: bool = False  # --chmod: the source's own mode does not reach the stage


MAX_LOG_DEPTH = 8  # a log goes on from at most this many others (lookups visit each): past it, it is copied


class _Head:
    """One of the first writes of a stage at "/" whose part is the same
    whatever path is read (RUNs, base images, a named context's files): a
    stage of 10,000 RUNs is read through them, never write by write."""

    __slots__ = ("digest", "last_blamed", "part", "state", "write")

    def __init__(self, before: _Head | None, write: _Write, index: int) -> None:
        self.write = write
        (self.part,) = _parts_of(write, "/")
        self.digest = _h(_raw(self.part.where), self.part.identity)  # as a selection hashes it
        self.state: hashlib._Hash = before.state.copy() if before is not None else hashlib.sha256()
        _feed(self.state, self.digest)  # _h of every head digest so far, unfinished
        # The index among the heads of the last part with a step to blame, up to this one.
        self.last_blamed: int | None = (
            index if self.part.blame is not None else before.last_blamed if before is not None else None
        )


class _WriteLog:
    """Writes in order, and where each one lands: the positions of the writes
    at each path and below each folder. A log may go on from another stage's
    writes (`base`, never changed again) instead of a copy of them: its
    positions count from the base's first write, and it indexes its own."""

    __slots__ = ("at", "base", "base_heads", "base_roots", "depth", "heads", "items", "mixed", "start", "under")

    def __init__(self, base: Writes | None = None) -> None:
        self.base = base
        self.start = len(base) if base is not None else 0  # the position of the first write of its own
        self.depth: int = base._log.depth + 1 if base is not None else 0
        self.base_heads = base.head_count() if base is not None else 0
        self.base_roots = base.roots_before(self.start) if base is not None else 0  # the base's writes at "/"
        self.items: list[_Write] = []
        self.at: dict[str, list[int]] = {}  # dest -> positions
        self.under: dict[str, list[int]] = {}  # folder -> positions of the writes strictly below it
        # The writes at "/" read alike from every path, before any other there (its own, after the base's).
        self.heads: list[_Head] = []
        self.mixed = self.base_heads != self.base_roots  # a write at "/" that depends on the path read came

    def add(self, write: _Write) -> None:
        position = self.start + len(self.items)
        self.items.append(write)
        dest = _normal(write.dest)
        self.at.setdefault(dest, []).append(position)
        for folder in _folders_above(dest):
            self.under.setdefault(folder, []).append(position)
        if dest == "/" and not self.mixed:
            if write.kind in (OPAQUE, WHOLE):
                self.heads.append(_Head(self.last_head(), write, self.base_heads + len(self.heads)))
            else:
                self.mixed = True

    def last_head(self) -> _Head | None:
        if self.heads:
            return self.heads[-1]
        return self.base.head(self.base_heads - 1) if self.base is not None and self.base_heads else None


class Writes:
    """A stage's writes, in order: a prefix of a log that stages built on it
    share (a stage that goes on from a point another one went on from starts
    a log of its own on top). What lands at or around a path is found through
    the logs' indexes, not by going through every write: a Dockerfile of
    10,000 COPYs, or of a stage of 10,000 RUNs and many stages built on it, stays linear."""

    __slots__ = ("_length", "_log")

    def __init__(self, log: _WriteLog | None = None, length: int = 0) -> None:
        self._log = log if log is not None else _WriteLog()
        self._length = length

    def __iter__(self) -> Iterator[_Write]:
        log = self._log
        if log.base is not None:
            yield from log.base
        yield from log.items[: self._length - log.start]

    def __len__(self) -> int:
        return self._length

    def plus(self, writes: Iterable[_Write]) -> Writes:
        """These writes followed by `writes` (this object is left as it is)."""
        log = self._log
        if log.start + len(log.items) != self._length:  # another stage went on from here
            if log.depth < MAX_LOG_DEPTH:
                log = _WriteLog(self)
            else:  # lookups would visit too many logs: copy what is ours
                log = _WriteLog()
                for write in self:
                    log.add(write)
        for write in writes:
            log.add(write)
        return Writes(log, log.start + len(log.items))

    def around(self, path: str) -> list[_Write]:
        """The writes, in order, that land at `path`, above it or below it
        (every write that can leave something there)."""
        heads, later = self.after_heads(path)
        return [head.write for head in heads] + later

    def after_heads(self, path: str) -> tuple[_Heads, list[_Write]]:
        """around(`path`), as the heads it starts with (the same for every
        path: RUNs, images) and the writes after them, found without going
        through the heads."""
        path = _normal(path)
        others = self._positions([folder for folder in (path, *_folders_above(path)) if folder != "/"], path)
        # The heads come first: those before every other write and before the end of this prefix.
        end = min(self._length, *(p for p, _ in others)) if others else self._length
        count = min(self.head_count(), self.roots_before(end))
        later = sorted([*self._roots_from(count), *others], key=lambda found: found[0])
        return _Heads(self, count), [write for _, write in later]

    def head_count(self) -> int:
        """How many heads lead these writes."""
        log = self._log
        return log.base_heads + bisect.bisect_left(log.at.get("/", []), self._length, hi=len(log.heads))

    def head(self, index: int) -> _Head:
        log = self._log
        if index < log.base_heads:
            assert log.base is not None, "heads below base_heads are the base's"
            return log.base.head(index)
        return log.heads[index - log.base_heads]

    def roots_before(self, end: int) -> int:
        """How many of these writes land at "/" before the position `end`."""
        log = self._log
        if end <= log.start:
            return log.base.roots_before(end) if log.base is not None else 0
        return log.base_roots + bisect.bisect_left(log.at.get("/", []), min(end, self._length))

    def _roots_from(self, first: int) -> list[tuple[int, _Write]]:
        """The writes at "/", from the `first`-th one on, with their positions."""
        log = self._log
        found = log.base._roots_from(first) if log.base is not None and first < log.base_roots else []
        top = log.at.get("/", [])
        mine = top[max(0, first - log.base_roots) : bisect.bisect_left(top, self._length)]
        return found + [(p, log.items[p - log.start]) for p in mine]

    def _positions(self, dests: list[str], folder: str) -> list[tuple[int, _Write]]:
        """The writes at `dests` and below `folder`, with their positions (in no order)."""
        log = self._log
        found = log.base._positions(dests, folder) if log.base is not None else []
        for positions in (*(log.at.get(dest, ()) for dest in dests), log.under.get(folder, ())):
            found += [(p, log.items[p - log.start]) for p in positions[: bisect.bisect_left(positions, self._length)]]
        return found


class _Heads:
    """The first `count` heads of some writes, each looked up when needed."""

    __slots__ = ("count", "writes")

    def __init__(self, writes: Writes | None, count: int) -> None:
        self.writes = writes
        self.count = count

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, index: int) -> _Head:
        index = index + self.count if index < 0 else index
        if not 0 <= index < self.count or self.writes is None:
            raise IndexError(index)
        return self.writes.head(index)

    def __iter__(self) -> Iterator[_Head]:
        return (self[i] for i in range(self.count))

    def after(self, index: int) -> list[_Head]:
        return [self[i] for i in range(index, self.count)]


NO_HEADS = _Heads(None, 0)


def _normal(path: str) -> str:
    """A path as the index keeps it (normpath keeps a leading "//": not here)."""
    normal = posixpath.normpath(path)
    return "/" + normal.lstrip("/") if normal.startswith("/") else normal


def _folders_above(path: str) -> Iterator[str]:
    """The folders above a normal absolute path, nearest first ("/" last; none for "/" or a relative path)."""
    while path.startswith("/") and path != "/":
        path = posixpath.dirname(path)
        yield path


FILE, FOLDER = "file", "folder"


@dataclass(frozen=True)
class _Part:
    """What one write leaves at or below a selected path."""

    where: str  # relative to the selected path; "" is the path itself
    identity: bytes
    blame: int | None = None  # the step whose output this is, when it cannot be known
    record: bytes | None = None  # exactly one plain file: its record digest, as in the context
    kind: str = ""  # FILE, FOLDER, or "" when not known

    @property
    def covers(self) -> bool:
        """A file put at the selected path itself replaces what was there."""
        return self.kind == FILE and not self.where


@dataclass
class _StageState:
    fs: bytes
    shape: bytes
    last: int | None
    writes: Writes


def _h(*parts: bytes) -> bytes:
    h = hashlib.sha256()
    for part in parts:
        _feed(h, part)
    return h.digest()


def _feed(h: hashlib._Hash, part: bytes) -> None:
    """One part of _h: its length, then its bytes (no two lists of parts hash alike)."""
    h.update(len(part).to_bytes(8, "big"))
    h.update(part)


def _raw(text: str) -> bytes:
    """A text's bytes as written (a Dockerfile or a file name need not be UTF-8)."""
    return text.encode("utf-8", "surrogateescape")


def stage_base_key(base: str) -> bytes:
    return _h(b"scratch") if base.lower() == "scratch" else _h(b"image", _raw(base))


def compute_keys(
    plan: Plan,
    view_for: Callable[[tuple[str, ...]], ContextView],
    named_view_for: Callable[[str], ContextView] | None = None,
) -> list[StepKey]:
    """Keys of every step of the plan, in report order.

    `view_for(excludes)` gives the context view with extra exclude patterns
    (COPY --exclude); `()` is the plain .dockerignore view. `named_view_for(name)`
    gives the view of a local named context (--build-context NAME=folder).
    """
    keys: list[StepKey] = []
    states: dict[int, _StageState] = {}
    exclude_sets: set[tuple[str, ...]] = set()  # each is a view of its own: memory, bounded
    for stage in plan.stages:
        if stage.base_stage is not None:
            state = _StageState(**vars(states[stage.base_stage]))
        else:
            base = stage_base_key(stage.base)
            state = _StageState(base, base, None, Writes())
        for step in stage.steps:
            check(COMPUTING_KEYS)
            excludes = tuple(_scoped_excludes(step))
            too_many = step.sources and excludes not in exclude_sets and len(exclude_sets) >= MAX_EXCLUDE_SETS
            if step.sources and not too_many:
                exclude_sets.add(excludes)
            view = view_for(excludes) if step.sources and not too_many else None
            entry = StepKey(step, len(keys), b"", b"", state.last, view=view)
            if too_many:
                entry.error = (
                    f"more than {MAX_EXCLUDE_SETS} different COPY --exclude sets in one Dockerfile, the most "
                    "ctxwatch follows (each keeps digests of the whole context)"
                )
            content_exact, content_shape = _content(step, entry, view, states, named_view_for)
            if stage.context and step.keyword == "from":
                # A folder is its files: the stage starts from their checksum (BuildKit's local source).
                state.fs = state.shape = entry.key = entry.shape = _h(b"local", content_exact)
                state.writes = state.writes.plus([_Write(WHOLE, "/", entry.index, identity=state.fs)])
                keys.append(entry)
                state.last = entry.index
                continue
            if step.keyword == "from":
                entry.key = entry.shape = state.fs
            elif step.link:
                # The copy happens on an empty layer: it is its own cache entry.
                entry.key, entry.shape = _h(b"link", content_exact), _h(b"link", content_shape)
                state.fs, state.shape = _h(b"merge", state.fs, entry.key), _h(b"merge", state.shape, entry.shape)
            else:
                entry.key, entry.shape = _h(state.fs, content_exact), _h(state.shape, content_shape)
                state.fs, state.shape = entry.key, entry.shape
            state.writes = state.writes.plus(_writes_of(entry, content_exact, states, state.writes))
            keys.append(entry)
            state.last = entry.index
        states[stage.index] = state
    _fail_unsent_wildcard_folders(keys)
    return keys


def _fail_unsent_wildcard_folders(keys: list[StepKey]) -> None:
    """BuildKit sends only the context paths the build's sources select. A
    wildcard below a folder (`build/*.txt`) that matches nothing, where no
    other source sends anything of that folder, finds no folder at all and
    fails the build (`lstat /build: no such file or directory`) - unless the
    builder kept the folder from an earlier build: the report decides."""
    sent = [i.resolved for k in keys for i in k.inputs if not i.wildcard]
    sent += [m for k in keys for i in k.inputs for m in i.matches]
    patterns = [i.source for k in keys for i in k.inputs if i.wildcard]
    for k in keys:
        for source in k.inputs:
            if not source.wildcard or source.matches or _parents(k.step):
                continue
            folder = _wildcard_free_prefix("/" + source.source)
            if folder == "/" or any(_overlaps("/" + p, folder) for p in sent):
                continue
            k.unsent_folder = k.unsent_folder or folder
            k.maybe_sent = any(_may_look_in(p, folder) for p in patterns if p != source.source)


def _may_look_in(pattern: str, folder: str) -> bool:
    """Whether a `**` of a wildcard could match below `folder`: BuildKit then
    sometimes sends the folder while it looks (observed both ways; what
    decides is not known). Other wildcards send a folder only with a match in it."""
    wanted = [p for p in pattern.split("/") if p and p != "."]
    names = [p for p in folder.split("/") if p]
    for i, name in enumerate(names):
        if i >= len(wanted) - 1:
            return False
        if wanted[i] == "**":
            return True
        if not filepath_match(wanted[i], name):
            return False
    return len(wanted) > len(names) and wanted[len(names)] == "**"


def _content(
    step: Step,
    entry: StepKey,
    view: ContextView | None,
    states: dict[int, _StageState],
    named_view_for: Callable[[str], ContextView] | None,
) -> tuple[bytes, bytes]:
    """What the step reads, hashed: exactly, and with the output of steps
    that cannot be known (RUN, remote images) replaced by a placeholder."""
    if step.error:
        entry.error = step.error
    head = [step.keyword.encode(), spec_bytes(_key_spec(step))]
    exact, shape = [], []
    blamed: list[int] = []
    if view is not None:
        try:
            entry.inputs = [select_source(view, src, parents=_parents(step)) for src in step.sources]
            # BuildKit sorts the selectors of one input by path; the content is their checksums in that order.
            exact = [i.key_digest for i in sorted(entry.inputs, key=lambda i: i.source)]
            shape = list(exact)
        except (SourceNotFound, ContextReadError) as e:
            entry.error = str(e)
            exact = shape = [_raw(str(e))]
    named = _named_reads(step, entry, named_view_for)
    exact, shape = exact + named, shape + named
    for stage_index, path in sorted(step.stage_reads, key=lambda read: read[1]):
        writes = states[stage_index].writes
        if step.keyword != "run" and path != "/" and not has_wildcard(path) and not _read(writes, path):
            # Nothing of that stage can be there (no RUN, no image): BuildKit cannot checksum it.
            entry.error = entry.error or f'"{path}": not found'
        read_exact, read_shape, blame = _stage_selection(writes, path)
        exact.append(read_exact)
        shape.append(read_shape)
        blamed += blame
    entry.output_steps = tuple(dict.fromkeys(blamed))
    return _h(*head, *exact), _h(*head, *shape)


def _named_reads(step: Step, entry: StepKey, named_view_for: Callable[[str], ContextView] | None) -> list[bytes]:
    """Files of named contexts the step reads: by content, like the build context's."""
    reads = step.context_reads
    if step.stage.context and step.keyword == "from":
        reads = ((step.stage.context, "."),)
    parts = []
    for name, path in reads:
        try:
            if named_view_for is None:
                raise ContextReadError(name, "no folder is given for it")
            parts += [_raw(name), select_source(named_view_for(name), path).key_digest]
        except (SourceNotFound, ContextReadError) as e:
            entry.error = f"named context {name!r}: {e}"
            parts.append(_raw(entry.error))
    return parts


def _key_spec(step: Step) -> dict:
    """The instruction as BuildKit's cache key sees it. A copy keeps only the
    base name of each source (its file operation keeps path.Base of the
    source: the path is in the content checksum's selector, which is not part
    of the key), whether the files come from the context or from a stage.
    `--link` is the shape of the graph (a copy onto an empty layer), not a field."""
    if step.keyword not in ("copy", "add"):
        return step.spec
    spec = {k: v for k, v in step.spec.items() if k not in ("sources", "link")}
    if step.stage_reads:
        spec.pop("from", None)  # the stage is an input; its files count by content
    spec["bases"] = [s if _parents(step) else _base_name(s) for s in step.spec.get("sources", [])]
    return spec


def _base_name(source: str) -> str:
    return posixpath.basename(source.rstrip("/")) or "/" if source not in (".", "/") else "/"


def _parents(step: Step) -> bool:
    return bool(step.spec.get("parents"))


# -- what a step leaves behind ------------------------------------------------------


def _writes_of(entry: StepKey, content: bytes, states: dict[int, _StageState], before: Writes) -> tuple[_Write, ...]:
    """The step's writes, known file by file where the daemon can know them."""
    step, index = entry.step, entry.index
    if step.keyword == "from" or step.keyword == "run" or step.remote:
        return (_Write(OPAQUE, "/", index, identity=entry.key),)
    if step.keyword == "workdir":
        return (_Write(ENTRY, posixpath.normpath(step.spec["path"]), index, identity=content),)
    dest = step.spec["dest"]
    flags = spec_bytes({"chmod": step.spec.get("chmod", ""), "chown": step.spec.get("chown", "")})
    flags = b"" if flags == _NO_FLAGS else flags
    writes: list[_Write] = []
    for name, body in step.spec.get("inline", []):
        place = posixpath.join(dest, name) if dest.endswith("/") else dest
        writes.append(_Write(WHOLE, posixpath.normpath(place), index, identity=_h(_raw(body), flags)))
    if step.stage_reads:
        source_writes = states[step.stage_reads[0][0]].writes
        for _, path in step.stage_reads:
            writes.append(_stage_placement(source_writes, path, dest, len(step.stage_reads), before, index, flags))
    elif entry.view is not None and not entry.error:
        for source in entry.inputs:
            writes += _context_placements(step, entry.view, source, dest, len(entry.inputs), before, index, flags)
    return tuple(writes)


_NO_FLAGS = spec_bytes({"chmod": "", "chown": ""})
ARCHIVE_SUFFIXES = (".tar", ".tgz", ".tbz2", ".txz", ".gz", ".bz2", ".xz", ".zst", ".lz4")


def _context_placements(
    step: Step,
    view: ContextView,
    source: SourceInput,
    dest: str,
    count: int,
    before: Writes,
    index: int,
    flags: bytes,
) -> list[_Write]:
    """Where a COPY/ADD puts each context source (BuildKit's copy: a folder's
    contents go into dest; a file goes to dest/<name> when dest is a folder)."""
    base = posixpath.normpath(dest)
    mode_set = bool(step.spec.get("chmod"))
    if _parents(step):
        # The copy is of the context root, filtered: the destination folder is made even when nothing matches.
        made = _Write(ENTRY, base, index, identity=_h(b"parents", flags))
        found = source.matches if source.wildcard else (source.resolved,)
        return [made] + [
            _Write(CONTEXT, posixpath.join(base, rel), index, view=view, source=rel, flags=flags, mode_set=mode_set)
            for rel in found
        ]
    if source.wildcard:
        if not dest.endswith("/") and len(source.matches) > 1:
            return [_Write(WHOLE, base, index, identity=_h(source.key_digest, flags))]
        places = []
        for rel in source.matches:
            node = view.node(rel)
            folder = node is not None and node.kind == KIND_DIR
            place = base if folder or not dest.endswith("/") else posixpath.join(base, posixpath.basename(rel))
            places.append(_Write(CONTEXT, place, index, view=view, source=rel, flags=flags, mode_set=mode_set))
        return places
    node = source.node
    assert node is not None, "a source without wildcards selects one node"
    if step.keyword == "add" and node.kind != KIND_DIR and source.source.lower().endswith(ARCHIVE_SUFFIXES):
        return [_Write(WHOLE, base, index, identity=_h(source.key_digest, flags))]  # may be unpacked
    if node.kind == KIND_DIR:
        return [_Write(CONTEXT, base, index, view=view, source=source.resolved, flags=flags, mode_set=mode_set)]
    if dest.endswith("/") or count > 1 or _is_folder(before, base) is True:
        place = posixpath.join(base, posixpath.basename(source.source))
        return [_Write(CONTEXT, place, index, view=view, source=source.resolved, flags=flags, mode_set=mode_set)]
    if _is_folder(before, base) is None:  # a RUN may have made dest a folder
        return [_Write(WHOLE, base, index, identity=_placed(node, flags, mode_set))]
    return [_Write(CONTEXT, base, index, view=view, source=source.resolved, flags=flags, mode_set=mode_set)]


def _stage_placement(
    source_writes: Writes,
    path: str,
    dest: str,
    count: int,
    before: Writes,
    index: int,
    flags: bytes,
) -> _Write:
    """Where a COPY --from puts another stage's `path`."""
    base = posixpath.normpath(dest)
    if not has_wildcard(path):
        kind = _is_folder(source_writes, path)
        if kind is True:
            return _Write(STAGE, base, index, source=path, writes=source_writes, flags=flags)
        if kind is False:
            if dest.endswith("/") or count > 1 or _is_folder(before, base) is True:
                base = posixpath.join(base, posixpath.basename(path))
                return _Write(STAGE, base, index, source=path, writes=source_writes, flags=flags)
            if _is_folder(before, base) is False:
                return _Write(STAGE, base, index, source=path, writes=source_writes, flags=flags)
    exact, _, blame = _stage_selection(source_writes, path)
    return _Write(WHOLE, base, index, identity=_h(exact, flags), blame=blame[-1] if blame else None)


def _is_folder(writes: Writes, path: str) -> bool | None:
    """Whether `path` is a folder in a stage with these writes: True, False
    (a file, or nothing yet), None when it cannot be known (a RUN may decide)."""
    read = _read(writes, path)
    if read.last_blamed() is not None:
        return None
    last = read.parts[-1] if read.parts else read.heads[-1].part if read.heads else None
    if last is None or last.covers:
        return False
    if any(p.where or p.kind == FOLDER for p in read.parts):  # a head is neither
        return True
    return None


# -- what a step reads from another stage -----------------------------------------


def _stage_selection(writes: Writes, path: str) -> tuple[bytes, bytes, tuple[int, ...]]:
    """The checksum of `path` in a stage (BuildKit checksums only the selected
    paths, by content): exact, with unknowable output replaced by a placeholder,
    and the steps to blame for that output (the last one that may have written there)."""
    if has_wildcard(path):
        # Matches inside a folder are not listed: everything under the
        # wildcard-free prefix counts, and a change there is never a sure miss.
        prefix = _wildcard_free_prefix(path)
        parts = _read(writes, prefix).all()
        exact = _h(b"wildcard", _raw(path), *(_h(_raw(p.where), p.identity) for p in parts))
        steps = tuple(w.step for w in writes.around(prefix) if _overlaps(w.dest, prefix))
        return exact, _h(STAGE_OUTPUT_PLACEHOLDER, _raw(path)), steps
    read = _read(writes, path)
    exact = read.identity()
    last = read.last_blamed()
    if last is None:
        return exact, exact, ()
    # The parts after the last blamed one, heads first.
    after = [h.digest for h in read.heads.after(last + 1)]
    after += [_h(_raw(p.where), p.identity) for p in read.parts[max(0, last + 1 - len(read.heads)) :]]
    blamed = read.heads[last].part if last < len(read.heads) else read.parts[last - len(read.heads)]
    assert blamed.blame is not None, "the last blamed part has a step to blame"
    return exact, _h(STAGE_OUTPUT_PLACEHOLDER, *after), (blamed.blame,)


@dataclass
class _Read:
    """What the writes leave at or below a path, in order: heads (the same
    for every path: RUNs, images; hashed once for all), then the other parts."""

    heads: _Heads
    parts: list[_Part]

    def __len__(self) -> int:
        return len(self.heads) + len(self.parts)

    def all(self) -> list[_Part]:
        return [h.part for h in self.heads] + self.parts

    def last_blamed(self) -> int | None:
        """The index of the last part with a step to blame."""
        for i in range(len(self.parts) - 1, -1, -1):
            if self.parts[i].blame is not None:
                return len(self.heads) + i
        return self.heads[-1].last_blamed if self.heads else None

    def identity(self) -> bytes:
        """The selection's checksum: _h of each part's (where, identity)."""
        if not self:
            return _h(b"absent")
        if not self.heads and len(self.parts) == 1 and self.parts[0].record is not None:
            return self.parts[0].record  # the same file copied from the context or from a stage: one key
        h = self.heads[-1].state.copy() if self.heads else hashlib.sha256()
        for p in self.parts:
            _feed(h, _h(_raw(p.where), p.identity))
        return h.digest()


def _read(writes: Writes, path: str) -> _Read:
    """What the writes leave at or below `path`, in order; a file replaces
    what an earlier write put at its place. Where two copies from the context
    put different files in one place (two folders copied into one), their
    folders are read file by file (`merged`): a file of the later one replaces
    the earlier's, as BuildKit's copy does."""
    heads, later = writes.after_heads(path)
    merged = _copies_overlap(later, path)
    parts: list[_Part] = []
    first = 0  # parts before this one were replaced by a file at `path` itself
    at: dict[str, list[int]] = {}  # where -> positions in parts (heads are at "" and never replaced)
    replaced: set[int] = set()
    for write in later:
        check(COMPUTING_KEYS)
        for part in _parts_of(write, path, merged):
            if part.kind == FILE:  # replaces what was at its place
                if not part.where:
                    first, heads = len(parts), NO_HEADS
                else:
                    replaced.update(at.pop(part.where, ()))
            at.setdefault(part.where, []).append(len(parts))
            parts.append(part)
    return _Read(heads, [p for i, p in enumerate(parts[first:], first) if i not in replaced])


_Copy = tuple[_Write, str, str]  # a copy from the context: (write, context path, absolute place it lands at)


def _copies_overlap(writes: Iterable[_Write], path: str) -> bool:
    """Whether two copies from the context put different files at one place at or below `path`."""
    copies = [(w, *place) for w in writes if w.kind == CONTEXT and (place := _context_place(w, path)) is not None]
    return any(_may_replace(copy, earlier) for i, copy in enumerate(copies) for earlier in copies[:i])


def _context_place(write: _Write, path: str) -> tuple[str, str] | None:
    """The context path a copy from the context leaves at or below `path`, and
    where it lands (`path` itself, or inside it); None when it lands elsewhere."""
    if _within(path, write.dest):
        return _inside(write.source, write.dest, path), path
    if _within(write.dest, path):
        return write.source, write.dest
    return None


def _inside(rel: str, place: str, at: str) -> str:
    """The context path at `at`, in a copy of context path `rel` that lands at `place`."""
    sub = posixpath.relpath(at, place) if at != place else ""
    return join(rel, sub) if sub else rel


def _may_replace(later: _Copy, earlier: _Copy) -> bool:
    """Whether two copies from the context may put different files at one
    place: their places overlap, and what lands in the overlap comes from
    another context path (or another context, or with other --chmod/--chown flags)."""
    (write, rel, place), (earlier_write, earlier_rel, earlier_place) = later, earlier
    if (write.view, write.flags, write.mode_set) != (earlier_write.view, earlier_write.flags, earlier_write.mode_set):
        return _overlaps(place, earlier_place)
    if _within(earlier_place, place):  # the earlier copy lands in the later one
        return _inside(rel, place, earlier_place) != earlier_rel
    if _within(place, earlier_place):
        return _inside(earlier_rel, earlier_place, place) != rel
    return False


def _parts_of(write: _Write, path: str, merged: bool = False) -> list[_Part]:
    if write.kind == OPAQUE:
        return [_Part("", write.identity, blame=write.step)]
    if write.kind == CONTEXT:
        found = _context_place(write, path)
        if found is None:
            return []
        rel, place = found
        return _copied(write, rel, posixpath.relpath(place, path) if place != path else "", merged)
    if _within(path, write.dest):  # the selected path is the written one or inside it
        sub = posixpath.relpath(path, write.dest) if path != write.dest else ""
        if write.kind == WHOLE:
            return [_Part("", write.identity, blame=write.blame)]
        if write.kind == ENTRY:
            return [_Part("", write.identity, kind=FOLDER)] if not sub else []
        assert write.writes is not None, "a write from a stage has that stage's writes"
        inner = _read(write.writes, posixpath.join(write.source, sub) if sub else write.source).all()
        return [_flagged(p, write.flags) for p in inner]
    if _within(write.dest, path):  # the write lands inside the selected folder
        where = posixpath.relpath(write.dest, path)
        if write.kind in (WHOLE, ENTRY):
            return [_Part(where, write.identity, blame=write.blame)]
        assert write.writes is not None, "a write from a stage has that stage's writes"
        inner = _read(write.writes, write.source).all()
        return [_Part(join(where, p.where) if p.where else where, _h(p.identity, write.flags), p.blame) for p in inner]
    return []


def _copied(write: _Write, rel: str, where: str, merged: bool) -> list[_Part]:
    """What a copy from the context leaves at `where`: the context node at `rel`,
    as one part, or a folder as its own part and those of all it holds (when
    `merged`, or under --chmod)."""
    assert write.view is not None, "a write from the context has its view"
    node = write.view.node(rel)
    if node is None:
        return []
    if node.kind != KIND_DIR:
        record = None if write.flags or where else node.digest
        return [_Part(where, _placed(node, write.flags, write.mode_set), record=record, kind=FILE)]
    if not merged and not write.mode_set:
        return [_Part(where, _h(node.digest, write.flags), kind=FOLDER)]
    # File by file: merged with another copy, or under --chmod, which sets the mode of all it copies.
    folder = node.node
    mode = b"" if write.mode_set else str(folder.mode).encode()
    parts = [_Part(where, _h(b"folder", mode, write.flags), kind=FOLDER)]
    for child in folder.children:
        parts += _copied(write, join(rel, child.name), join(where, child.name), merged)
    return parts


def _placed(node: SentNode, flags: bytes, mode_set: bool) -> bytes:
    """A context file as the copy leaves it: under --chmod (`mode_set`) its own mode is replaced."""
    if mode_set:
        record = node.node.record
        assert record is not None, "a file node has its record"
        return _h(record.kind.encode(), str(record.size).encode(), record.content, _raw(record.link_target),
                  repr(record.xattrs).encode(), flags)  # fmt: skip
    return _h(node.digest, flags)


def _flagged(part: _Part, flags: bytes) -> _Part:
    if not flags:
        return part
    return _Part(part.where, _h(part.identity, flags), part.blame, None, part.kind)


def _within(path: str, folder: str) -> bool:
    return folder == "/" or path == folder or path.startswith(folder.rstrip("/") + "/")


def _overlaps(a: str, b: str) -> bool:
    return _within(a, b) or _within(b, a)


def _wildcard_free_prefix(path: str) -> str:
    parts = []
    for part in path.split("/"):
        if has_wildcard(part):
            break
        parts.append(part)
    return posixpath.normpath("/".join(parts) or "/")


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


def select_source(view: ContextView, source: str, parents: bool = False) -> SourceInput:
    """Resolve one COPY/ADD/bind source the way BuildKit checksums it."""
    if has_wildcard(source):
        # A wildcard that matches nothing copies nothing: BuildKit's frontend
        # allows empty wildcards (unlike a missing plain path).
        matches = _glob_parents(view, source) if parents else _glob(view, source)
        children = []
        for rel in matches:
            node = view.node(rel)
            assert node is not None, "a wildcard matches paths that are sent"
            children.append(Child(rel, node.kind, node.digest))
        blob = encode_selection(children)
        # BuildKit lists the matches below the wildcard-free prefix (--parents: from the root).
        prefix = "" if parents else _wildcard_free_prefix("/" + source).lstrip("/")
        listed = [Child(c.name[len(prefix) :].lstrip("/"), c.kind, c.digest) for c in children]
        return SourceInput(
            source,
            "",
            digest_of(blob),
            selection=blob,
            wildcard=True,
            matches=tuple(matches),
            key_digest=_h(b"parents" if parents else b"matches", encode_selection(listed)),
        )
    rel = "" if source == "." else source
    resolved = _follow_symlinks(view, rel)
    if resolved is None:
        raise SourceNotFound(source)
    view.prefetch(resolved)
    node = view.node(resolved)
    if node is None:
        raise SourceNotFound(source)
    key_digest = _h(b"parents", _raw(source), node.digest) if parents else node.digest
    return SourceInput(source, resolved, node.digest, node=node, key_digest=key_digest)


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
        record = node.node.record
        assert record is not None, "a symlink's node is its record"
        target = record.link_target
        base = "/" if target.startswith("/") else "/" + "/".join(resolved)
        target_parts = posixpath.normpath(posixpath.join(base, target)).lstrip("/").split("/")
        pending = [p for p in target_parts if p and p != "."] + pending[1:]
        resolved = []
    return "/".join(resolved)


def _glob_parents(view: ContextView, pattern: str) -> list[str]:
    """Context paths a `COPY --parents` pattern selects: BuildKit matches it as
    an include pattern (patternmatcher), so `**` spans zero or more folders and
    a matched folder brings everything below it."""
    matcher = PathMatcher([pattern])
    start = _wildcard_free_prefix("/" + pattern).lstrip("/")
    found, stack = [], [start]
    while stack:
        base = stack.pop()
        node = view.node(base)
        if node is None or node.kind != KIND_DIR:
            continue
        for child in node.node.children:
            rel = join(base, child.name)
            if matcher.match(rel).excluded:  # "excluded" is the pattern matching
                found.append(rel)
            elif child.kind == KIND_DIR:
                stack.append(rel)
    return sorted(found)


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
