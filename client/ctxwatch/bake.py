"""Build contexts from bake files, read as `docker buildx bake` reads them.

Files: docker-bake.json, docker-bake.hcl, docker-bake.override.json,
docker-bake.override.hcl in the current folder (buildx's default order; its
compose files are left to `--compose`), or the files given, merged in order:
blocks of the same name merge attribute by attribute, the later file wins.
HCL is parsed by python-hcl2; what buildx then evaluates is done here:
variables (defaults, overridden by the environment), `${...}` templates,
groups, `inherits`, `matrix`, and the attributes a build's cache depends on
(context, dockerfile, dockerfile-inline, args, target, contexts, no-cache,
no-cache-filter). Anything else (functions, conditionals, `for`
expressions, directives) is not evaluated: the targets that use it are not
registered, and the problem names the file, target and attribute.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import posixpath
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import hcl2

from ctxwatch import projects
from ctxwatch.compose import normalize_project_name

DEFAULT_FILES = ("docker-bake.json", "docker-bake.hcl", "docker-bake.override.json", "docker-bake.override.hcl")
# The attributes a build's cache keys depend on; the others (tags, platforms, outputs...) are not read.
ATTRIBUTES = ("context", "dockerfile", "dockerfile-inline", "args", "target", "contexts", "no-cache", "no-cache-filter")
# Functions of buildx's standard library evaluated here (pure string functions); others are reported.
FUNCTIONS: dict[str, Callable[..., object]] = {
    "upper": lambda s: str(s).upper(),
    "lower": lambda s: str(s).lower(),
    "trimspace": lambda s: str(s).strip(),
    "trimprefix": lambda s, p: str(s).removeprefix(str(p)),
    "trimsuffix": lambda s, p: str(s).removesuffix(str(p)),
    "replace": lambda s, old, new: str(s).replace(str(old), str(new)),
    "join": lambda sep, items: str(sep).join(str(i) for i in items),
    "equal": lambda a, b: a == b,
    "notequal": lambda a, b: a != b,
    "and": lambda a, b: bool(a) and bool(b),
    "or": lambda a, b: bool(a) or bool(b),
    "not": lambda a: not a,
    "coalesce": lambda *values: next((v for v in values if v not in (None, "")), None),
    "md5": lambda s: hashlib.md5(str(s).encode()).hexdigest(),
    "sha1": lambda s: hashlib.sha1(str(s).encode()).hexdigest(),
    "sha256": lambda s: hashlib.sha256(str(s).encode()).hexdigest(),
}


class BakeError(ValueError):
    """A bake file buildx would refuse, or a name that is not defined."""


class NotEvaluated(Exception):
    """A feature of the file this reader does not evaluate."""


@dataclass
class Target:
    name: str
    context: str = "."
    dockerfile: str = "Dockerfile"
    dockerfile_inline: str | None = None
    args: dict[str, str] = field(default_factory=dict)
    target: str = ""
    contexts: dict[str, str] = field(default_factory=dict)
    no_cache: bool | None = None  # None: not set
    no_cache_filter: list[str] = field(default_factory=list)

    def printed(self) -> dict:
        """The attributes as `buildx bake --print` shows them (unset ones left out)."""
        out: dict = {"context": self.context, "dockerfile": self.dockerfile}
        if self.dockerfile_inline is not None:
            out["dockerfile-inline"] = self.dockerfile_inline
        if self.args:
            out["args"] = self.args
        if self.target:
            out["target"] = self.target
        if self.contexts:
            out["contexts"] = self.contexts
        if self.no_cache is not None:
            out["no-cache"] = self.no_cache
        if self.no_cache_filter:
            out["no-cache-filter"] = self.no_cache_filter
        return out


@dataclass
class Bake:
    folder: str  # where bake runs: relative paths are relative to it
    files: list[str]
    targets: dict[str, Target]  # the selected targets, evaluated
    groups: dict[str, list[str]]
    problems: dict[str, str]  # target -> what was not evaluated, and where
    defined: set[str] = field(default_factory=set)  # every target the files define, selected or not


@dataclass
class _Block:
    attributes: dict = field(default_factory=dict)
    where: dict = field(default_factory=dict)  # attribute -> file it came from


def find_files(cwd: Path, environ: Mapping[str, str]) -> list[Path]:
    """BUILDX_BAKE_FILE, else buildx's default files that exist in `cwd`, in its order."""
    if environ.get("BUILDX_BAKE_FILE"):
        separator = environ.get("BUILDX_BAKE_PATH_SEPARATOR", os.pathsep)
        return [cwd / p for p in environ["BUILDX_BAKE_FILE"].split(separator) if p]
    found = [cwd / name for name in DEFAULT_FILES if (cwd / name).is_file()]
    if not found:
        raise BakeError(f"no bake file found in {cwd} (looked for {', '.join(DEFAULT_FILES)})")
    return found


def load(
    files: Sequence[str | Path] = (),
    names: Sequence[str] = (),
    cwd: Path | None = None,
    environ: Mapping[str, str] | None = None,
    every_target: bool = False,
) -> Bake:
    """The targets `docker buildx bake [-f FILE ...] [NAME ...]` would build (default: group "default";
    `every_target`: all the files define)."""
    cwd = Path(os.path.abspath(cwd or os.getcwd()))
    environ = dict(os.environ if environ is None else environ)
    paths = [Path(os.path.abspath(cwd / f)) for f in files] if files else find_files(cwd, environ)
    variables: dict[str, _Block] = {}
    groups: dict[str, _Block] = {}
    targets: dict[str, _Block] = {}
    for path in paths:
        for kind, name, attributes in _blocks(path):
            table = {"variable": variables, "group": groups, "target": targets}.get(kind)
            if table is None:
                continue  # function blocks: reported where called
            block = table.setdefault(name, _Block())
            for key, value in attributes.items():
                block.attributes[key] = value
                block.where[key] = str(path)
    scope = _Scope(variables, environ)
    evaluator = _Evaluator(scope, targets, cwd)
    group_members = {}
    for name, block in groups.items():
        try:
            group_members[name] = [str(t) for t in scope.value(block.attributes.get("targets", []), {})]
        except NotEvaluated as e:
            raise BakeError(f"{block.where.get('targets', paths[0])}: group {name!r} targets: {e}") from e
    wanted = list(targets) if every_target else _expand(list(names) or ["default"], group_members, targets, evaluator)
    result: dict[str, Target] = {}
    problems: dict[str, str] = {}
    for name in wanted:
        try:
            for target in evaluator.resolve(name):
                result[target.name] = target
        except NotEvaluated as e:
            problems[name] = str(e)
    return Bake(str(cwd), [str(p) for p in paths], result, group_members, problems, _defined(targets, evaluator))


def _defined(targets: dict[str, _Block], evaluator: _Evaluator) -> set[str]:
    """Every target name the files define (a matrix's names included), whether selected or not:
    a registered target not among them is no longer defined."""
    defined = set(targets)
    for name in targets:
        try:
            defined.update(target.name for target in evaluator.resolve(name))
        except (NotEvaluated, BakeError):
            continue  # its block name stands for it
    return defined


def _expand(names: list[str], groups: dict[str, list[str]], targets: dict, evaluator: _Evaluator) -> list[str]:
    """Group names replaced by their targets (groups may nest), in order, once each."""
    out: list[str] = []
    todo = list(names)
    seen_groups = set()
    while todo:
        name = todo.pop(0)
        if name in groups:
            if name not in seen_groups:
                seen_groups.add(name)
                todo[0:0] = groups[name]
            continue
        if name not in targets:
            if name == "default" and not groups:
                raise BakeError('no target or group named "default" (name the targets to build)')
            raise BakeError(f"no target or group named {name!r} (targets: {', '.join(sorted(targets))})")
        if name not in out:
            out.append(name)
    return out


def _blocks(path: Path) -> list[tuple[str, str, dict]]:
    """(kind, name, attributes) of every block of an HCL or JSON bake file."""
    try:
        text = path.read_text()
    except OSError as e:
        raise BakeError(f"{path}: {e.strerror or e}") from e
    blocks = []
    if path.suffix == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise BakeError(f"{path}: not valid JSON: {e}") from e
        for kind, entries in data.items():
            for name, attributes in (entries or {}).items():
                blocks.append((kind, name, _json_templates(attributes)))
        return blocks
    try:
        data = hcl2.loads(text)
    except Exception as e:  # the parser raises its own error types (lark's) for syntax errors
        raise BakeError(f"{path}: not valid HCL: {e}") from e
    data = {k: v for k, v in data.items() if not k.startswith("__")}  # the parser's comments
    for kind, entries in data.items():
        if not isinstance(entries, list) or not all(isinstance(e, dict) and _is_block(e) for e in entries):
            continue  # a top-level attribute (buildx takes `VAR = "x"` as a variable): see below
        for entry in entries:
            for raw_name, attributes in entry.items():
                name = raw_name.strip('"')
                blocks.append((kind, name, {k: v for k, v in attributes.items() if k != "__is_block__"}))
    for key, value in data.items():
        if not isinstance(value, list) or not all(isinstance(e, dict) and _is_block(e) for e in value):
            blocks.append(("variable", key, {"default": value}))
    return blocks


def _is_block(entry: dict) -> bool:
    return all(isinstance(v, dict) and v.get("__is_block__") for v in entry.values())


class _Template(str):
    """A JSON file's string: a template, like an HCL quoted string."""


def _json_templates(value):
    if isinstance(value, str):
        return _Template(value)
    if isinstance(value, list):
        return [_json_templates(v) for v in value]
    if isinstance(value, dict):
        return {k: _json_templates(v) for k, v in value.items()}
    return value


class _Scope:
    """Variables: the environment overrides a default (typed like the default)."""

    def __init__(self, variables: dict[str, _Block], environ: Mapping[str, str]) -> None:
        self.variables = variables
        self.environ = environ
        self.values: dict[str, object] = {}
        self.resolving: set[str] = set()

    def variable(self, name: str):
        if name in self.values:
            return self.values[name]
        block = self.variables.get(name)
        if block is None:
            raise NotEvaluated(f"unknown variable {name!r}")
        if name in self.resolving:
            raise BakeError(f"variable {name!r} refers to itself")
        self.resolving.add(name)
        try:
            default = self.value(block.attributes.get("default"), {})
        finally:
            self.resolving.discard(name)
        value = default
        if name in self.environ:
            value = _typed(self.environ[name], default, name)
        self.values[name] = value
        return value

    def value(self, raw, local: Mapping[str, object]):
        if raw is None or isinstance(raw, (bool, int, float)):
            return raw
        if isinstance(raw, list):
            return [self.value(v, local) for v in raw]
        if isinstance(raw, dict):
            return {k: self.value(v, local) for k, v in raw.items()}
        if isinstance(raw, _Template):
            return self.template(str(raw), local, escapes=False)
        text = str(raw)
        if text.startswith('"<<') and text.endswith('"'):
            return self.template(_heredoc(text[1:-1]), local, escapes=False)
        if len(text) >= 2 and text.startswith('"') and text.endswith('"'):
            return self.template(text[1:-1], local, escapes=True)
        if text.startswith("${") and text.endswith("}") and _closing(text, 2) == len(text) - 1:
            return _Expression(text[2:-1], self, local).parse()
        return _Expression(text, self, local).parse()

    def template(self, text: str, local: Mapping[str, object], escapes: bool) -> str:
        out, literal, i = [], [], 0
        while i < len(text):
            if text.startswith("$${", i) or text.startswith("%%{", i):
                literal.append(text[i + 1 : i + 3])
                i += 3
            elif text.startswith("%{", i):
                raise NotEvaluated(f"template directive {text[i : _closing(text, i + 2) + 1]!r}")
            elif text.startswith("${", i):
                end = _closing(text, i + 2)
                out.append(_unescape("".join(literal)) if escapes else "".join(literal))
                literal = []
                out.append(_string(_Expression(text[i + 2 : end], self, local).parse()))
                i = end + 1
            else:
                literal.append(text[i])
                i += 1
        out.append(_unescape("".join(literal)) if escapes else "".join(literal))
        return "".join(out)


class _Expression:
    """A small recursive-descent reader for the HCL expressions bake files use
    most: literals, names, lists, and calls of FUNCTIONS. Anything else raises
    NotEvaluated naming it."""

    TOKEN = re.compile(
        r'\s*(?:(?P<string>"(?:[^"\\]|\\.)*")|(?P<number>-?\d+(?:\.\d+)?)|(?P<name>[A-Za-z_][A-Za-z0-9_-]*)'
        r"|(?P<punct>[(),.\[\]])|(?P<other>\S+?))"
    )

    def __init__(self, text: str, scope: _Scope, local: Mapping[str, object]) -> None:
        self.text = text
        self.scope = scope
        self.local = local
        self.tokens = [(m.lastgroup, m.group(m.lastgroup)) for m in self.TOKEN.finditer(text) if m.lastgroup]
        self.pos = 0

    def parse(self):
        value = self._value()
        if self.pos != len(self.tokens):
            raise NotEvaluated(f"expression {self.text.strip()!r} (operators, conditionals, attribute access)")
        return value

    def _next(self) -> tuple[str, str]:
        if self.pos >= len(self.tokens):
            raise NotEvaluated(f"expression {self.text.strip()!r}")
        token = self.tokens[self.pos]
        self.pos += 1
        return token

    def _peek(self) -> str:
        return self.tokens[self.pos][1] if self.pos < len(self.tokens) else ""

    def _value(self):
        kind, text = self._next()
        if kind == "string":
            return self.scope.template(text[1:-1], self.local, escapes=True)
        if kind == "number":
            return float(text) if "." in text else int(text)
        if kind == "punct" and text == "[":
            items = []
            while self._peek() != "]":
                items.append(self._value())
                if self._peek() == ",":
                    self.pos += 1
            self.pos += 1
            return items
        if kind == "name":
            if text in ("true", "false"):
                return text == "true"
            if text == "null":
                return None
            if text == "for":
                raise NotEvaluated(f"for expression {self.text.strip()!r}")
            if self._peek() == "(":
                return self._call(text)
            value = self.local[text] if text in self.local else self.scope.variable(text)
            while self._peek() == ".":  # a map's attribute (matrix values are often maps)
                self.pos += 1
                kind, attribute = self._next()
                if kind != "name" or not isinstance(value, dict) or attribute not in value:
                    raise NotEvaluated(f"attribute access {self.text.strip()!r}")
                value = value[attribute]
            return value
        raise NotEvaluated(f"expression {self.text.strip()!r}")

    def _call(self, name: str):
        function = FUNCTIONS.get(name)
        if function is None:
            raise NotEvaluated(f"function {name}() in {self.text.strip()!r}")
        self.pos += 1
        args = []
        while self._peek() != ")":
            args.append(self._value())
            if self._peek() == ",":
                self.pos += 1
            elif self._peek() != ")":
                raise NotEvaluated(f"expression {self.text.strip()!r}")
        self.pos += 1
        return function(*args)


class _Evaluator:
    """Targets with their `inherits` and `matrix` applied."""

    def __init__(self, scope: _Scope, targets: dict[str, _Block], cwd: Path) -> None:
        self.scope = scope
        self.targets = targets
        self.cwd = cwd

    def resolve(self, name: str) -> list[Target]:
        block = self.targets[name]
        matrix = block.attributes.get("matrix")
        if matrix is None:
            return [self._target(name, name, {}, [])]
        values = self._attribute(name, block, "matrix", {})
        if not isinstance(values, dict):
            raise NotEvaluated(f"{block.where['matrix']}: target {name!r}: matrix must be a map of lists")
        keys = list(values)
        out = []
        for combination in itertools.product(*(values[k] for k in keys)):
            local = dict(zip(keys, combination, strict=True))
            if "name" not in block.attributes:
                raise BakeError(f"{block.where['matrix']}: target {name!r}: a matrix needs a name attribute")
            out.append(self._target(name, str(self._attribute(name, block, "name", local)), local, []))
        return out

    def _target(self, label: str, name: str, local: dict, chain: list[str]) -> Target:
        if label in chain:
            raise BakeError(f"target {label!r} inherits from itself ({' -> '.join([*chain, label])})")
        block = self.targets.get(label)
        if block is None:
            raise BakeError(f"target {chain[-1]!r} inherits from {label!r}, which is not defined")
        merged: dict = {}
        for parent in self._attribute(label, block, "inherits", local) or []:
            merged = _merge(merged, vars(self._target(str(parent), str(parent), {}, [*chain, label])))
        own = {}
        for attribute in ATTRIBUTES:
            if attribute in block.attributes:
                value = self._attribute(label, block, attribute, local)
                if value is not None:
                    own[attribute.replace("-", "_")] = value
        merged = _merge(merged, own)
        merged["name"] = name
        context = str(merged.get("context", "."))
        if "://" not in context:
            context = posixpath.normpath(context)  # as buildx cleans a local context path
        return Target(
            name=name,
            context=context,
            dockerfile=str(merged.get("dockerfile", "Dockerfile")),
            dockerfile_inline=None if merged.get("dockerfile_inline") is None else str(merged["dockerfile_inline"]),
            args={k: _string(v) for k, v in (merged.get("args") or {}).items() if v is not None},
            target=str(merged.get("target") or ""),
            contexts={k: str(v) for k, v in (merged.get("contexts") or {}).items()},
            no_cache=None if merged.get("no_cache") is None else bool(merged["no_cache"]),
            no_cache_filter=[str(v) for v in merged.get("no_cache_filter") or []],
        )

    def _attribute(self, target: str, block: _Block, attribute: str, local: dict):
        try:
            return self.scope.value(block.attributes.get(attribute), local)
        except NotEvaluated as e:
            raise NotEvaluated(f"{block.where.get(attribute, '')}: target {target!r}, {attribute}: {e}") from None


def _merge(base: dict, override: dict) -> dict:
    """A target over what it inherits: maps (args, contexts) merge, other attributes replace."""
    out = dict(base)
    for key, value in override.items():
        out[key] = {**(base.get(key) or {}), **value} if isinstance(value, dict) else value
    return out


def _typed(text: str, default, name: str):
    """An environment value in the type of the variable's default."""
    if isinstance(default, bool):
        if text.lower() in ("1", "true", "t"):
            return True
        if text.lower() in ("0", "false", "f", ""):
            return False
        raise BakeError(f"variable {name}: {text!r} from the environment is not a boolean")
    if isinstance(default, (int, float)) and not isinstance(default, bool):
        try:
            return type(default)(text)
        except ValueError:
            raise BakeError(f"variable {name}: {text!r} from the environment is not a number") from None
    return text


def _string(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return "" if value is None else str(value)


def _heredoc(text: str) -> str:
    """`<<EOT\\n...\\nEOT` (or `<<-EOT`, its common indent removed) as its body."""
    first, _, rest = text.partition("\n")
    body = rest.rsplit("\n", 1)[0] + "\n" if "\n" in rest else ""
    if first.startswith("<<-"):
        lines = body.splitlines(keepends=True)
        indent = min((len(line) - len(line.lstrip()) for line in lines if line.strip()), default=0)
        body = "".join(line[indent:] for line in lines)
    return body


def _closing(text: str, start: int) -> int:
    """The index of the `}` closing a `${` or `%{` whose body starts at `start` (strings skipped)."""
    depth, i, quoted = 1, start, False
    while i < len(text):
        c = text[i]
        if quoted:
            if c == "\\":
                i += 1
            elif c == '"':
                quoted = False
        elif c == '"':
            quoted = True
        elif c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    raise BakeError(f"unclosed template in {text!r}")


def _unescape(text: str) -> str:
    """HCL string escapes: \\n \\r \\t \\" \\\\ \\uNNNN."""
    return re.sub(
        r"\\(u[0-9a-fA-F]{4}|U[0-9a-fA-F]{8}|.)",
        lambda m: (
            chr(int(m.group(1)[1:], 16))
            if m.group(1)[0] in "uU" and len(m.group(1)) > 1
            else {"n": "\n", "r": "\r", "t": "\t"}.get(m.group(1), m.group(1))
        ),
        text,
    )


def definition(bake: Bake, project_name: str = "") -> projects.Definition:
    """The contexts to register: `<project>-<target>`, the project being `project_name` or the bake folder's name."""
    project = normalize_project_name(project_name or os.path.basename(bake.folder)) or "bake"
    registrations = []
    skipped = dict(bake.problems)
    for target in bake.targets.values():
        context = os.path.normpath(os.path.join(bake.folder, target.context))
        if "://" in target.context or target.context.endswith(".git"):
            skipped[target.name] = f"remote build context {target.context} (not watched)"
            continue
        contexts = {
            name: value
            if "://" in value or value.startswith("target:")
            else os.path.normpath(os.path.join(bake.folder, value))
            for name, value in target.contexts.items()
        }
        registrations.append(
            projects.Registration(
                name=f"{project}-{target.name}",
                member=target.name,
                path=context,
                dockerfile=os.path.normpath(os.path.join(context, target.dockerfile)),
                build_args=target.args,
                target=target.target,
                build_contexts=contexts,
                no_cache=bool(target.no_cache),
                no_cache_filter=target.no_cache_filter,
                inline=target.dockerfile_inline,
            )
        )
    # Not `complete`: the default group need not name every target; `defined` says which are gone.
    return projects.Definition(
        "bake",
        project,
        bake.files,
        registrations,
        skipped,
        [],
        False,
        bake.folder,
        unknown=set(skipped),
        defined=bake.defined,
    )
