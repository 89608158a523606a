"""Which steps read a path: the inverse of the steps' inputs, for editors
("editing src/app.py re-runs `COPY src/ /app/src/` and what follows").

A step reads a context path when one of its sources selects it: the source
is the path, a folder the path lies in (and the path is sent, not excluded
by .dockerignore or --exclude), or lies inside the path (a folder asked
about). A wildcard source selects what it matches now; a path that does not
exist yet is selected when the pattern would match it.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..context.ignore import filepath_match, has_wildcard
from .keys import StepKey


@dataclass(frozen=True)
class Read:
    index: int  # the step's index in the report
    source: str  # the step's source (resolved) that selects the path
    steps_after: int  # later steps that run on top of it: they re-run when it does


def readers(keys: list[StepKey], rel: str) -> list[Read]:
    """The steps of one context (in build order) that read context path `rel` ("" is the context root)."""
    found = []
    for k in keys:
        source = _selecting_source(k, rel)
        if source is not None:
            found.append(Read(k.index, source, _steps_after(keys, k.index)))
    return found


def _selecting_source(k: StepKey, rel: str) -> str | None:
    if k.view is None:
        return None
    resolved = {i.source: i for i in k.inputs}
    for source in k.step.sources:
        selected = resolved.get(source)
        if selected is not None and selected.wildcard:
            candidates = list(selected.matches)
            if not _in_tree(k, rel) and _pattern_selects(source, rel):
                candidates.append(rel)  # not there yet: the pattern would pick it up
        else:
            candidates = [selected.resolved if selected is not None else ("" if source == "." else source)]
        for path in candidates:
            if _inside(path, rel):  # the path asked about is a folder holding what the step reads
                return path or "."
            if _inside(rel, path) and not k.view.matcher.excluded_full(rel):
                return path or "."
    return None


def _steps_after(keys: list[StepKey], index: int) -> int:
    """Steps built on top of step `index`: the rest of its stage, stages FROM
    it, and steps that read its output from another stage when that output
    cannot be known (a RUN's). Keys come in build order, parents first."""
    affected = {index}
    for k in keys[index + 1 :]:
        if k.parent in affected or affected.intersection(k.output_steps):
            affected.add(k.index)
    return len(affected) - 1


def _inside(path: str, folder: str) -> bool:
    """True when context path `path` is `folder` or below it ("" is the root)."""
    return not folder or path == folder or path.startswith(folder + "/")


def _in_tree(k: StepKey, rel: str) -> bool:
    return k.view is not None and k.view.entry(rel) is not None


def _pattern_selects(pattern: str, rel: str) -> bool:
    """A wildcard source would select `rel` (or a folder above it), component by component."""
    parts = [p for p in pattern.split("/") if p and p != "."]
    names = rel.split("/") if rel else []
    if "**" in parts or len(names) < len(parts):
        return False  # not answered for `**` patterns or folders above a match
    return all(filepath_match(p, n) if has_wildcard(p) else p == n for p, n in zip(parts, names, strict=False))
