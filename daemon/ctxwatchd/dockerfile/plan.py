"""From a parsed Dockerfile to a build plan: stages, steps and their inputs.

This is what BuildKit's Dockerfile frontend does before it builds: ARG/ENV
scoping and expansion, stage names and indexes, `--target` pruning, and for
each step the inputs it really reads (context paths, other stages, remote
images and URLs) and the values it sees. Instructions that only change image
metadata (ENV, LABEL, USER, EXPOSE, ...) are not steps; they change the
config that later steps see.
"""

from __future__ import annotations

import json
import posixpath
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..budget import check
from ..limits import MAX_PLAN_EXPANSION_CHARS, MAX_RUN_ENVIRONMENT_BYTES, RUN_ENV_VARIABLE_BYTES
from .parser import Instruction, ParsedDockerfile, Span
from .shell import ShellExpansionError, expand_word

# BuildKit shows these as steps; the others only change the image config.
STEP_KEYWORDS = {"run", "copy", "add", "workdir"}
KNOWN_KEYWORDS = STEP_KEYWORDS | {
    "from",
    "arg",
    "env",
    "label",
    "user",
    "expose",
    "volume",
    "cmd",
    "entrypoint",
    "shell",
    "stopsignal",
    "healthcheck",
    "onbuild",
    "maintainer",
}
# The flags each instruction accepts, as BuildKit's instruction parser
# defines them (frontend/dockerfile/instructions/parse.go); any other flag
# fails the whole build before it starts. ARG and STOPSIGNAL do not parse flags.
FLAGS = {
    "copy": ("chown", "from", "chmod", "link", "exclude", "parents"),
    "add": ("chown", "chmod", "link", "keep-git-dir", "checksum", "unpack", "exclude"),
    "from": ("platform",),
    "run": ("mount", "network", "security", "device"),
    "healthcheck": ("interval", "timeout", "start-period", "start-interval", "retries"),
}
UNCHECKED_FLAGS = {"arg", "stopsignal"}
REMOTE_URL = re.compile(r"^(https?://|git@|git://|ssh://)|\.git(#.*)?$")
# Named context values BuildKit fetches itself: remote inputs, never a local folder.
REMOTE_CONTEXT = re.compile(r"^(docker-image://|oci-layout://|target:|https?://|git@|git://|ssh://)")
DEFAULT_SHELL = ("/bin/sh", "-c")
NO_SPAN = Span(0, 0, 0, 0)


class PlanError(ValueError):
    """The Dockerfile is valid syntax but cannot be built (unknown stage, bad flag...)."""

    def __init__(self, line: int, message: str) -> None:
        super().__init__(f"line {line}: {message}" if line else message)
        self.line = line
        self.message = message


class InstructionParseError(PlanError):
    """An instruction BuildKit's instruction parser refuses, worded as BuildKit words it."""

    def __init__(self, line: int, message: str) -> None:
        super().__init__(line, message)
        self.args = (f"dockerfile parse error on line {line}: {message}",)

    def __str__(self) -> str:
        return self.args[0]


@dataclass
class Step:
    stage: Stage
    keyword: str  # run, copy, add, workdir, from
    instruction: str  # as written, on one line (continuation lines joined, as BuildKit prints it)
    line: int
    spec: dict  # everything of the instruction that goes into its key, expanded
    sources: tuple[str, ...] = ()  # context paths it reads (cleaned; may hold wildcards)
    excludes: tuple[str, ...] = ()  # COPY --exclude patterns
    link: bool = False  # COPY --link: the copy does not depend on its parent's files
    stage_reads: tuple[tuple[int, str], ...] = ()  # (stage, absolute path) it reads: COPY --from, mount from=
    context_reads: tuple[tuple[str, str], ...] = ()  # (named context, path in it) it reads
    remote: str = ""  # an unpinned remote it depends on (image, URL)
    values: dict[str, str] = field(default_factory=dict)  # ARG/ENV values it sees
    error: str = ""  # BuildKit would fail on it
    span: Span = NO_SPAN  # where the instruction is written, all its lines
    expanded: str = ""  # as BuildKit's progress output prints it: keyword in upper case, variables expanded
    number: int = 0  # its position in BuildKit's numbering of the stage's steps; 0 when BuildKit shows none


@dataclass
class Stage:
    index: int
    name: str  # as written; "" when unnamed
    base: str  # FROM's argument after expansion
    base_stage: int | None
    line: int
    remote: str = ""  # an unpinned base image
    context: str = ""  # the local named context it starts from (--build-context NAME=folder)
    replaced: bool = False  # a named context of the stage's own name replaces its instructions
    steps: list[Step] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)  # ENV, inherited through FROM <stage>
    args: dict[str, str] = field(default_factory=dict)  # declared ARGs with a value, inherited too
    workdir: str = "/"
    user: str = ""
    shell: tuple[str, ...] = DEFAULT_SHELL
    progress_name: str = ""  # as BuildKit's progress output names it; "" when the Dockerfile has one stage
    numbered: int = 0  # its steps BuildKit numbers, so far (the next one is numbered one more)

    @property
    def label(self) -> str:
        return self.name or str(self.index)

    def progress(self, step: Step) -> str:
        """BuildKit's name for one of its steps: `[build 2/5]`, `[stage-1 1/3]`, `[ 2/11]`
        (dockerfile2llb's prefixCommand: the position padded to the width of
        the total); "" for a step BuildKit does not number."""
        if not step.number:
            return ""
        total = len(self.steps)  # every step BuildKit counts: a FROM image, ADD, COPY, RUN, WORKDIR
        prefix = f"{self.progress_name} " if self.progress_name else ""
        return f"[{prefix}{step.number:>{len(str(total))}}/{total}]"


@dataclass
class Plan:
    stages: list[Stage]  # every stage the target needs, in Dockerfile order
    target: Stage
    unused_build_args: tuple[str, ...]

    @property
    def steps(self) -> list[Step]:
        return [step for stage in self.stages for step in stage.steps]


def build_plan(
    parsed: ParsedDockerfile,
    text_lines: list[str],
    build_args: Mapping[str, str],
    target: str = "",
    named_contexts: Mapping[str, str] | None = None,
) -> Plan:
    """Raises PlanError for Dockerfiles BuildKit would refuse before building.

    `named_contexts` maps `--build-context` names to their values (a folder,
    or a remote value such as docker-image://...)."""
    return _Planner(parsed, text_lines, build_args, named_contexts or {}).plan(target)


def is_remote_context(value: str) -> bool:
    return bool(REMOTE_CONTEXT.match(value))


def clean_source(src: str) -> str:
    """A context path as BuildKit resolves it: `..` cannot climb out of the root."""
    cleaned = posixpath.normpath("/" + src).lstrip("/")
    return cleaned or "."


def stage_path(src: str) -> str:
    """A path inside another stage's filesystem, absolute and normalised."""
    return "/" + posixpath.normpath("/" + src).lstrip("/")


def is_pinned_image(ref: str) -> bool:
    return "@sha256:" in ref


class _Planner:
    def __init__(
        self,
        parsed: ParsedDockerfile,
        text_lines: list[str],
        build_args: Mapping[str, str],
        named_contexts: Mapping[str, str],
    ) -> None:
        self.parsed = parsed
        self.named = dict(named_contexts)
        self.lines = text_lines
        self.build_args = dict(build_args)
        self.used_args: set[str] = set()
        self.global_args: dict[str, str | None] = {}
        self.global_env: dict[str, str] = {}  # the global ARGs with a value: what `$NAME` means in FROM
        self.stages: list[Stage] = []
        self.by_name: dict[str, int] = {}
        self.expanded_chars = 0  # every expansion so far (an ARG chain can double a value on each line)
        self._env_of: Stage | None = None  # the stage whose ARG and ENV values _env_now holds
        self._env_now: dict[str, str] = {}
        self._env_bytes = 0  # what a RUN keeps and hashes of _env_now (see MAX_RUN_ENVIRONMENT_BYTES)
        self.run_env_bytes = 0  # that, summed over the RUNs so far

    def plan(self, target: str) -> Plan:
        stage: Stage | None = None
        for ins in self.parsed.instructions:
            check("planning the Dockerfile's stages and steps")
            if ins.keyword not in KNOWN_KEYWORDS:
                raise PlanError(ins.start_line, f"unknown instruction: {ins.keyword.upper()}")
            _check_flags(ins)
            if ins.keyword == "from":
                stage = self._from(ins)
            elif stage is None:
                if ins.keyword != "arg":
                    raise PlanError(
                        ins.start_line, f"no build stage in current context: {ins.keyword.upper()} must come after FROM"
                    )
                self._global_arg(ins)
            elif not stage.replaced:
                self._instruction(stage, ins)
        if not self.stages:
            raise PlanError(0, "the Dockerfile has no FROM instruction")
        self._name_for_progress()
        wanted = self._target(target)
        needed = self._needed(wanted.index)
        unused = tuple(sorted(set(self.build_args) - self.used_args))
        return Plan([s for s in self.stages if s.index in needed], wanted, unused)

    # -- stages ----------------------------------------------------------------
    def _name_for_progress(self) -> None:
        """Stages as BuildKit's progress names them: by name in lower case, else
        `stage-N`, and not at all when the build has one stage. A COPY --from of
        an image counts as a stage there."""
        from_images = any(
            "from" in step.spec and step.spec["from"].lower() not in self.by_name
            for stage in self.stages
            for step in stage.steps
            if step.keyword in ("copy", "add")
        )
        if len(self.stages) > 1 or from_images:
            for stage in self.stages:
                stage.progress_name = stage.name.lower() or f"stage-{stage.index}"

    def _target(self, target: str) -> Stage:
        if not target:
            return self.stages[-1]
        index = self.by_name.get(target.lower())
        if index is None:
            named = ", ".join(s.name for s in self.stages if s.name) or "none are named"
            raise PlanError(0, f"target stage {target!r} could not be found (stages: {named})")
        return self.stages[index]

    def _needed(self, index: int) -> set[int]:
        needed, todo = set(), [index]
        while todo:
            i = todo.pop()
            if i in needed:
                continue
            needed.add(i)
            stage = self.stages[i]
            if stage.base_stage is not None:
                todo.append(stage.base_stage)
            for step in stage.steps:
                todo.extend(index for index, _ in step.stage_reads)
        return needed

    def _global_arg(self, ins: Instruction) -> None:
        for name, default in self._arg_pairs(ins, self.global_env):
            self.used_args.add(name)
            value = self.global_args[name] = self.build_args.get(name, default)
            if value is None:
                self.global_env.pop(name, None)
            else:
                self.global_env[name] = value

    def _from(self, ins: Instruction) -> Stage:
        args = list(ins.args)
        base = self._expand(args[0], self.global_env, ins) if args else ""
        name = ""
        if len(args) == 3 and args[1].lower() == "as":
            name = args[2]
        elif len(args) != 1:
            raise PlanError(ins.start_line, "FROM requires either one or three arguments")
        if not base:
            raise PlanError(ins.start_line, "FROM has an empty image name")
        index = len(self.stages)
        base_stage = self.by_name.get(base.lower())
        # A named context replaces a stage of its name, or else names the base (BuildKit's lookup order).
        named = name if name in self.named else base if base_stage is None and base in self.named else ""
        if named:
            return self._from_named_context(ins, index, name, named)
        stage = Stage(index, name, base, base_stage, ins.start_line)
        if base_stage is not None:
            # The stage starts from its base's state: the ARGs with a value are in
            # its environment too (dockerfile2llb's dispatchArg adds them to the state's env).
            parent = self.stages[base_stage]
            stage.env, stage.args, stage.workdir, stage.user, stage.shell = (
                dict(parent.env),
                dict(parent.args),
                parent.workdir,
                parent.user,
                parent.shell,
            )
        elif base.lower() != "scratch" and not is_pinned_image(base):
            stage.remote = base
        if base_stage is None and base.lower() != "scratch":
            stage.steps.append(
                Step(
                    stage,
                    "from",
                    self._line_text(ins),
                    ins.start_line,
                    {"image": base, "platform": self._flags(ins).get("platform", [""])[-1]},
                    remote=stage.remote,
                    span=ins.span,
                    expanded=f"FROM {base}",
                    number=1,
                )
            )
            stage.numbered = 1
        return self._add_stage(stage, ins)

    def _from_named_context(self, ins: Instruction, index: int, name: str, named: str) -> Stage:
        """A stage that starts from a named context: a remote value is a base
        image; a folder is read by content (its files are the stage's)."""
        value = self.named[named]
        stage = Stage(index, name, value, None, ins.start_line, replaced=named == name)
        if is_remote_context(value):
            stage.remote = "" if is_pinned_image(value) else value
            spec = {"image": value, "platform": self._flags(ins).get("platform", [""])[-1]}
        else:
            stage.context = named
            spec = {"context": named}
        # BuildKit counts this FROM but shows no step for it: the named context is loaded instead.
        step = Step(
            stage, "from", self._line_text(ins), ins.start_line, spec, remote=stage.remote, expanded=f"FROM {value}"
        )
        stage.steps.append(step)
        return self._add_stage(stage, ins)

    def _add_stage(self, stage: Stage, ins: Instruction) -> Stage:
        if stage.name:
            if stage.name.lower() in self.by_name:
                raise PlanError(ins.start_line, f"duplicate stage name {stage.name!r}")
            self.by_name[stage.name.lower()] = stage.index
        self.by_name[str(stage.index)] = stage.index
        self.stages.append(stage)
        return stage

    # -- instructions ------------------------------------------------------------
    def _instruction(self, stage: Stage, ins: Instruction) -> None:
        kw = ins.keyword
        env = self._env(stage)
        if kw == "arg":
            for name, default in self._arg_pairs(ins, env):
                self.used_args.add(name)
                value = self.build_args.get(name)
                if value is None:
                    value = default if default is not None else self.global_args.get(name)
                if value is not None:
                    # ARG and ENV set one environment, the later one winning: this
                    # value replaces an ENV of its name (an ENV after it wins in turn).
                    stage.args[name] = value
                    stage.env.pop(name, None)
                    self._env_of = None
        elif kw == "env":
            for key, value in _pairs(ins):
                stage.env[self._expand(key, env, ins)] = self._expand(value, env, ins)
                self._env_of = None
                env = self._env(stage)
        elif kw == "workdir":
            path = self._expand(ins.args[0], env, ins) if ins.args else ""
            stage.workdir = posixpath.normpath(posixpath.join(stage.workdir, path))
            self._step(stage, ins, "workdir", {"path": stage.workdir, "user": stage.user})
        elif kw == "user":
            stage.user = self._expand(ins.args[0], env, ins) if ins.args else ""
        elif kw == "shell":
            stage.shell = tuple(ins.args)
        elif kw == "run":
            self._run(stage, ins, env)
        elif kw in ("copy", "add"):
            self._copy(stage, ins, env)

    def _run(self, stage: Stage, ins: Instruction, env: dict[str, str]) -> None:
        flags = self._flags(ins)
        cmd = list(ins.args) if ins.json_form else [*stage.shell, " ".join(ins.args)]
        mounts, sources, stage_reads, context_reads = [], [], [], []
        remote = ""
        for raw in flags.get("mount", []):
            mount = self._mount(raw, env, ins)
            mounts.append(mount)
            if mount["type"] == "bind":
                context = self._context_ref(mount.get("from", ""))
                if context:
                    context_reads.append((context, clean_source(mount.get("source", "."))))
                elif mount.get("from") in self.named and mount["from"].lower() not in self.by_name:
                    remote = remote or self.named[mount["from"]]  # a remote named context
                elif mount.get("from"):
                    stage_reads.append((self._stage_ref(mount["from"], ins), stage_path(mount.get("source", "/"))))
                else:
                    sources.append(clean_source(mount.get("source", ".")))
        # Each RUN's key covers its whole environment (as BuildKit's does), so keys
        # grow with ENV lines times RUN lines: bounded, with an error naming the line.
        self.run_env_bytes += self._env_bytes
        if self.run_env_bytes > MAX_RUN_ENVIRONMENT_BYTES:
            raise PlanError(
                ins.start_line,
                f"RUN: the environments of the RUN instructions so far (every ARG and ENV in scope of each) "
                f"exceed {MAX_RUN_ENVIRONMENT_BYTES} bytes together, the most ctxwatch keys",
            )
        values = dict(env)  # declared ARGs with a value and ENV: what the command's environment holds
        spec = {
            "cmd": cmd,
            "env": sorted(values.items()),
            "user": stage.user,
            "workdir": stage.workdir,
            "mounts": mounts,
            "network": flags.get("network", ["default"])[-1],
            "security": flags.get("security", ["sandbox"])[-1],
            "heredocs": [[h.name, h.content] for h in ins.heredocs],
        }
        self._step(
            stage,
            ins,
            "run",
            spec,
            sources=tuple(sources),
            stage_reads=tuple(stage_reads),
            context_reads=tuple(context_reads),
            remote="" if is_pinned_image(remote) else remote,
            values=values,
        )

    def _copy(self, stage: Stage, ins: Instruction, env: dict[str, str]) -> None:
        flags = self._flags(ins)
        words = [self._expand(a, env, ins) for a in ins.args]
        if len(words) < 2:
            raise PlanError(ins.start_line, f"{ins.keyword.upper()} requires at least two arguments")
        *srcs, dest = words
        heredocs = {h.name: h for h in ins.heredocs}
        inline, local = [], []
        for src in srcs:
            doc = heredocs.get(_heredoc_name(src)) if src.startswith("<<") else None
            if doc is not None:
                inline.append([doc.name, doc.content])  # the file's content is in the Dockerfile
            else:
                local.append(src)
        srcs = local
        from_ref = self._expand(flags["from"][-1], env, ins) if "from" in flags else ""
        checksum = flags.get("checksum", [""])[-1]
        spec = {
            "op": ins.keyword,
            "dest": _resolve_dest(stage.workdir, dest),
            "inline": inline,
            "chown": flags.get("chown", [""])[-1],
            "chmod": flags.get("chmod", [""])[-1],
            "link": _bool_flag(flags, "link"),
            "parents": _bool_flag(flags, "parents"),
            "exclude": sorted(flags.get("exclude", [])),
            "keep_git_dir": _bool_flag(flags, "keep-git-dir"),
            "checksum": checksum,
        }
        # BuildKit copies onto an empty layer (and merges it) only without --chmod.
        linked = spec["link"] and not spec["chmod"]
        step_kwargs: dict[str, Any] = {"excludes": tuple(flags.get("exclude", [])), "link": linked}
        if from_ref:
            spec["from"] = from_ref
            stage_paths = [stage_path(s) for s in srcs]
            spec["sources"] = stage_paths
            index = self.by_name.get(from_ref.lower())
            context = self._context_ref(from_ref)
            if context:
                step_kwargs["context_reads"] = tuple((context, clean_source(s)) for s in srcs)
            elif index is not None and index < stage.index:
                step_kwargs["stage_reads"] = tuple((index, path) for path in stage_paths)
            elif from_ref in self.named:
                value = self.named[from_ref]
                if not is_pinned_image(value):
                    step_kwargs["remote"] = value
            elif not is_pinned_image(from_ref):
                step_kwargs["remote"] = from_ref
        else:
            remote = [s for s in srcs if ins.keyword == "add" and REMOTE_URL.search(s)]
            local = [s for s in srcs if s not in remote]
            spec["sources"] = [clean_source(s) for s in local] + remote
            step_kwargs["sources"] = tuple(clean_source(s) for s in local)
            if remote and not checksum:
                step_kwargs["remote"] = remote[0]
        self._step(stage, ins, ins.keyword, spec, values=dict(env), **step_kwargs)

    def _mount(self, raw: str, env: dict[str, str], ins: Instruction) -> dict:
        mount: dict[str, str] = {"type": "bind"}
        for part in raw.split(","):
            key, sep, value = part.partition("=")
            key = key.strip().lower()
            if key in ("target", "dst", "destination"):
                key = "target"
            elif key in ("source", "src"):
                key = "source"
            mount[key] = self._expand(value, env, ins) if sep else "true"
        if mount["type"] == "cache":
            # BuildKit (0.13+) leaves a cache mount's id and sharing mode out of the step's key.
            mount.pop("id", None)
            mount.pop("sharing", None)
        if mount["type"] == "secret" and "target" not in mount and "env" not in mount:
            mount["target"] = "/run/secrets/" + mount.get("id", posixpath.basename(mount.get("source", "")))
        if "target" not in mount and mount["type"] not in ("secret", "ssh"):
            raise PlanError(ins.start_line, f"--mount={raw}: a {mount['type']} mount needs a target")
        return dict(sorted(mount.items()))

    def _context_ref(self, ref: str) -> str:
        """The local named context a `--from=ref` reads directly: a folder given
        as a named context, or a stage that is only such a folder."""
        if not ref:
            return ""
        index = self.by_name.get(ref.lower())
        if index is not None:
            stage = self.stages[index]
            return stage.context if stage.context and len(stage.steps) == 1 else ""
        value = self.named.get(ref)
        return ref if value is not None and not is_remote_context(value) else ""

    def _stage_ref(self, ref: str, ins: Instruction) -> int:
        index = self.by_name.get(ref.lower())
        if index is None or index >= len(self.stages):
            raise PlanError(
                ins.start_line,
                f"--mount from={ref}: no earlier stage has that name (images as mount sources are not supported)",
            )
        return index

    def _step(self, stage: Stage, ins: Instruction, keyword: str, spec: dict, **kwargs) -> None:
        # A WORKDIR that stays at / makes no step: BuildKit counts it in the total, but shows no number for it.
        shows = not (keyword == "workdir" and spec["path"] == "/")
        number = 0
        if shows:
            stage.numbered = number = stage.numbered + 1
        text = self._line_text(ins)
        expanded = self._expanded(text, self._env(stage), ins)
        stage.steps.append(
            Step(stage, keyword, text, ins.start_line, spec, span=ins.span, expanded=expanded, number=number, **kwargs)
        )

    def _expanded(self, text: str, env: dict[str, str], ins: Instruction) -> str:
        """The instruction as BuildKit's progress prints it: expanded as one word
        (a RUN keeps its quotes and unset names, and masks secrets given as
        environment variables), the keyword in upper case; as written when it
        does not expand."""
        run = ins.keyword == "run"
        if run:
            mounts = map(_mount_options, self._flags(ins).get("mount", []))
            env = {**env, **{m["env"]: "****" for m in mounts if m.get("type") == "secret" and m.get("env")}}
        try:
            expanded = expand_word(text, env, self.parsed.escape, raw_quotes=run, keep_unset=run).words[0]
        except ShellExpansionError:
            expanded = text
        keyword, space, rest = expanded.partition(" ")
        return keyword.upper() + space + rest

    # -- helpers ------------------------------------------------------------------
    def _env(self, stage: Stage) -> dict[str, str]:
        """What `$NAME` means at this point: ENV wins over an earlier ARG (a later
        ARG has taken the name out of `env`), as in BuildKit.
        Made again only after an ARG or ENV (not for every instruction: linear time)."""
        if self._env_of is not stage:
            self._env_of, self._env_now = stage, {**stage.args, **stage.env}
            now = self._env_now
            self._env_bytes = sum(map(len, now)) + sum(map(len, now.values())) + RUN_ENV_VARIABLE_BYTES * len(now)
        return self._env_now

    def _expand(self, word: str, env: Mapping[str, str], ins: Instruction) -> str:
        try:
            expanded = expand_word(word, env, self.parsed.escape).words[0]
        except ShellExpansionError as e:
            raise PlanError(ins.start_line, f"{ins.keyword.upper()}: {e}") from e
        self.expanded_chars += len(expanded)
        if self.expanded_chars > MAX_PLAN_EXPANSION_CHARS:
            raise PlanError(
                ins.start_line,
                f"{ins.keyword.upper()}: the Dockerfile's ARG/ENV expansions exceed {MAX_PLAN_EXPANSION_CHARS} "
                "characters together, the most ctxwatch expands",
            )
        return expanded

    def _arg_pairs(self, ins: Instruction, env: Mapping[str, str]) -> list[tuple[str, str | None]]:
        pairs = []
        for word in ins.args:
            name, sep, default = word.partition("=")
            if not name:
                raise PlanError(ins.start_line, f"ARG {word!r}: a name is required")
            pairs.append((name, self._expand(default, env, ins) if sep else None))
        return pairs

    def _flags(self, ins: Instruction) -> dict[str, list[str]]:
        flags: dict[str, list[str]] = {}
        for raw in ins.flags:
            name, _, value = raw[2:].partition("=")
            flags.setdefault(name.lower(), []).append(value)
        return flags

    def _line_text(self, ins: Instruction) -> str:
        # On one line, continuation lines joined, as BuildKit's progress output prints it.
        return ins.original.strip()


def _mount_options(raw: str) -> dict[str, str]:
    """A --mount flag's options, unexpanded (key=value, comma-separated)."""
    return {key.strip().lower(): value for key, _, value in (part.partition("=") for part in raw.split(","))}


def _bool_flag(flags: dict[str, list[str]], name: str) -> bool:
    """`--link`, `--link=true`: set; `--link=false`: not (BuildKit's boolean flags)."""
    return name in flags and flags[name][-1].lower() != "false"


def _check_flags(ins: Instruction) -> None:
    """BuildKit's BFlags.Parse: names are case-sensitive; an unknown one is
    refused with a suggestion when a known one is close."""
    if ins.keyword in UNCHECKED_FLAGS:
        return
    known = FLAGS.get(ins.keyword, ())
    for raw in ins.flags:
        if raw == "--":
            return
        name = raw.partition("=")[0]
        if name[2:] not in known:
            suggestion = _suggest(name[2:], known)
            hint = f" (did you mean {suggestion}?)" if suggestion else ""
            raise InstructionParseError(ins.start_line, f"unknown flag: {name}{hint}")


def _suggest(value: str, options: tuple[str, ...]) -> str:
    """The closest option under an edit distance of 3 (BuildKit's util/suggest)."""
    best, best_distance = "", 3
    for option in options:
        distance = _levenshtein(value, option)
        if distance < best_distance:
            best, best_distance = option, distance
    return best


def _levenshtein(a: str, b: str) -> int:
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


def _pairs(ins: Instruction) -> list[tuple[str, str]]:
    """ENV/LABEL arguments come as (key, value, separator) triples from the parser."""
    args = list(ins.args)
    return [(args[i], args[i + 1]) for i in range(0, len(args) - 2, 3)]


def _heredoc_name(word: str) -> str:
    return word[2:].lstrip("-").strip("'\"")


def _resolve_dest(workdir: str, dest: str) -> str:
    """The destination as BuildKit's frontend resolves it (trailing slash kept)."""
    resolved = posixpath.normpath(posixpath.join(workdir, dest))
    if dest.endswith(("/", "/.")) or dest in (".", ".."):
        resolved = resolved.rstrip("/") + "/"
    return resolved


def spec_bytes(spec: dict) -> bytes:
    """The canonical encoding of a step's spec, for hashing."""
    return json.dumps(spec, sort_keys=True, separators=(",", ":")).encode()
