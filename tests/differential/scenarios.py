"""Seeded random build scenarios: a context, a multi-stage Dockerfile, and
changes between builds.

A scenario is plain data (JSON-able), made only from its seed, so a
disagreement can be replayed and minimised by hand. Every file's content and
every RUN command carries the scenario's token: scenarios share one builder,
and a step of one must never be found in the cache because another built it.
"""

from __future__ import annotations

import fnmatch
import random
from dataclasses import asdict, dataclass, field

BASE_STAGE = 'FROM scratch AS base\nCOPY busybox /bin/busybox\nRUN ["/bin/busybox","--install","-s","/bin"]\n'
FOLDERS = ["src", "src/lib", "docs", "build", "pkg/a", "pkg/b", "app"]
NAMES = ["a.txt", "b.txt", "c.md", "d.log", "main.go", "x.json"]
IGNORE_PATTERNS = ["*.log", "**/*.log", "docs", "**/*.md", "build/d.log", "pkg/b", "src/lib/b.txt"]
IGNORE_EXCEPTIONS = ["!docs/a.txt", "!README.md", "!build/d.log", "!pkg/b/a.txt"]


@dataclass
class Change:
    op: str  # write | chmod | add | remove | touch | build_arg | dockerfile
    path: str = ""
    content: str = ""
    mode: int = 0o644
    name: str = ""  # build_arg
    value: str = ""


@dataclass
class Scenario:
    seed: int
    files: dict[str, str]
    dockerignore: str | None
    dockerfile: str
    build_args: dict[str, str]
    phases: list[list[Change]] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)

    def describe(self) -> str:
        lines = [f"seed {self.seed}", "--- Dockerfile", self.dockerfile.rstrip()]
        if self.dockerignore is not None:
            lines += ["--- .dockerignore", self.dockerignore.rstrip()]
        lines += ["--- files", *(f"{p}: {c!r}" for p, c in sorted(self.files.items()))]
        lines.append(f"--- build args {self.build_args}")
        for i, phase in enumerate(self.phases, 1):
            parts = []
            for c in phase:
                if c.op == "dockerfile":
                    parts.append("dockerfile edit:\n" + c.content.rstrip())
                else:
                    parts.append(
                        " ".join(f"{k}={v!r}" for k, v in asdict(c).items() if v not in ("", 0o644) or k == "op")
                    )
            lines.append(f"--- change {i}: " + "; ".join(parts))
        return "\n".join(lines)


def _ignored(path: str, patterns: list[str]) -> bool:
    """Whether a path is left out of the context (the scenario only names files that are sent)."""
    from ctxwatchd.context.ignore import PathMatcher

    return bool(patterns) and PathMatcher(patterns).excluded_full(path)


class _Maker:
    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.seed = seed
        self.token = f"s{seed}"
        self.files: dict[str, str] = {}
        self.ignore: list[str] = []
        self.stages: list[dict] = []  # name, shell (can RUN), outputs (paths written)
        self.lines: list[str] = []
        self.build_args: dict[str, str] = {}
        self.runs = 0
        self.named: set[str] = set()  # files a COPY names: never removed, never ignored

    def content(self, path: str, version: int) -> str:
        return f"{self.token} {path} v{version}\n"

    # -- context ------------------------------------------------------------------
    def make_context(self) -> None:
        rng = self.rng
        for folder in rng.sample(FOLDERS, rng.randint(3, 5)):
            for name in rng.sample(NAMES, rng.randint(1, 3)):
                self.files[f"{folder}/{name}"] = self.content(f"{folder}/{name}", 0)
        for name in rng.sample(["a.txt", "README.md", "x.json"], rng.randint(1, 2)):
            self.files[name] = self.content(name, 0)
        if rng.random() < 0.6:
            self.ignore = rng.sample(IGNORE_PATTERNS, rng.randint(1, 3))
            if rng.random() < 0.6:
                self.ignore.append(rng.choice(IGNORE_EXCEPTIONS))

    def sent_files(self) -> list[str]:
        return sorted(p for p in self.files if not _ignored(p, self.ignore))

    def sent_folders(self) -> list[str]:
        folders = {p.rsplit("/", 1)[0] for p in self.sent_files() if "/" in p}
        return sorted(f for f in folders if not _ignored(f, self.ignore))

    # -- Dockerfile -----------------------------------------------------------------
    def make_dockerfile(self) -> str:
        rng = self.rng
        self.stages.append({"name": "base", "shell": True, "outputs": []})
        for index in range(rng.randint(1, 3)):
            self.add_stage(index)
        self.add_final_stage()
        return BASE_STAGE + "".join(self.lines)

    def add_final_stage(self) -> None:
        """The target: it copies something of every stage, so every stage is built."""
        self.lines.append("\nFROM scratch AS final\n")
        for i, stage in enumerate(self.stages[1:]):
            if stage["outputs"]:
                path = self.rng.choice(stage["outputs"])
                self.lines.append(f"COPY {self._flags()}--from={stage['name']} {path} /final/{i}/\n")
            else:
                self.lines.append(f"COPY --from={stage['name']} / /final/{i}/\n")

    def add_stage(self, index: int) -> None:
        rng = self.rng
        name = f"st{index}"
        choices = ["base", "base", "scratch"] + [s["name"] for s in self.stages[1:]]
        parent = rng.choice(choices)
        shell = parent != "scratch" and next(s for s in self.stages if s["name"] == parent)["shell"]
        inherited = [] if parent in ("base", "scratch") else list(self._stage(parent)["outputs"])
        self.lines.append(f"\nFROM {parent} AS {name}\n")
        stage = {"name": name, "shell": shell, "outputs": inherited}
        if shell and rng.random() < 0.5:
            self.lines.append(f"ENV TOKEN={self.token}\n")
        for _ in range(rng.randint(1, 5)):
            self.add_instruction(stage)
        self.stages.append(stage)

    def _stage(self, name: str) -> dict:
        return next(s for s in self.stages if s["name"] == name)

    def add_instruction(self, stage: dict) -> None:
        rng = self.rng
        kinds = ["copy_file", "copy_file", "copy_dir", "copy_wildcard", "copy_multi", "add_file", "copy_parents",
                 "copy_exclude", "workdir"]  # fmt: skip
        if any(s["outputs"] for s in self.stages[1:]):
            kinds += ["copy_from", "copy_from"]
        if stage["shell"]:
            kinds += ["run", "run", "run_mount", "arg_run", "env_run"]
        if "DIR" not in self.build_args:
            kinds.append("arg_copy")
        getattr(self, "_" + rng.choice(kinds))(stage)

    def _flags(self) -> str:
        rng = self.rng
        flags = []
        if rng.random() < 0.2:
            flags.append("--link")
        if rng.random() < 0.15:
            flags.append(f"--chmod={rng.choice(['755', '600'])}")
        return " ".join(flags) + " " if flags else ""

    def _named_file(self) -> str:
        path = self.rng.choice(self.sent_files())
        self.named.add(path)
        return path

    def _copy_file(self, stage: dict) -> None:
        path = self._named_file()
        base = path.rsplit("/", 1)[-1]
        if self.rng.random() < 0.5:
            dest = self.rng.choice(["/app/", "/dst/", "/app/sub/"])
            stage["outputs"].append(dest + base)
        else:
            dest = f"/f/{self.rng.randint(0, 9)}{base}"
            stage["outputs"].append(dest)
        self.lines.append(f"COPY {self._flags()}{path} {dest}\n")

    def _copy_dir(self, stage: dict) -> None:
        folders = self.sent_folders()
        if not folders:
            return self._copy_file(stage)
        folder = self.rng.choice(folders)
        dest = self.rng.choice(["/app/", "/tree/", f"/{folder.replace('/', '_')}/"])
        self.named.add(folder)
        stage["outputs"].append(dest.rstrip("/"))
        for p in self.sent_files():
            if p.startswith(folder + "/"):
                stage["outputs"].append(dest + p[len(folder) + 1 :])
        self.lines.append(f"COPY {self._flags()}{folder} {dest}\n")

    def _copy_wildcard(self, stage: dict) -> None:
        folder = self.rng.choice([*self.sent_folders(), ""])
        pattern = self.rng.choice(["*.txt", "*.md", "?.txt", "[ab].*", "*"])
        source = f"{folder}/{pattern}" if folder else pattern
        self.lines.append(f"COPY {self._flags()}{source} /w/\n")
        inside = [
            p[len(folder) + 1 :] if folder else p for p in self.sent_files() if p.startswith(folder + "/") or not folder
        ]
        if any("/" not in rest and fnmatch.fnmatchcase(rest, pattern) for rest in inside):
            stage["outputs"].append("/w")  # an empty wildcard makes no /w

    def _copy_multi(self, stage: dict) -> None:
        files = self.sent_files()
        first, second = self.rng.sample(files, 2) if len(files) > 1 else (files[0], files[0])
        self.named.update((first, second))
        self.lines.append(f"COPY {self._flags()}{first} {second} /multi/\n")
        stage["outputs"] += ["/multi/" + first.rsplit("/", 1)[-1], "/multi/" + second.rsplit("/", 1)[-1]]

    def _add_file(self, stage: dict) -> None:
        path = self._named_file()
        self.lines.append(f"ADD {path} /added/\n")
        stage["outputs"].append("/added/" + path.rsplit("/", 1)[-1])

    def _copy_parents(self, stage: dict) -> None:
        pattern = self.rng.choice(["**/a.txt", "pkg/*/x.json", "src/**/*.go", "**/*.md", "*/a.txt"])
        self.lines.append(f"COPY --parents {pattern} /p/\n")
        stage["outputs"].append("/p")

    def _copy_exclude(self, stage: dict) -> None:
        folders = self.sent_folders()
        if not folders:
            return self._copy_file(stage)
        folder = self.rng.choice(folders)
        self.named.add(folder)
        pattern = self.rng.choice(["*.log", "*.md", "b.txt", "*.json"])
        self.lines.append(f"COPY --exclude={pattern} {folder} /ex/\n")
        stage["outputs"].append("/ex")

    def _workdir(self, stage: dict) -> None:
        self.lines.append(f"WORKDIR {self.rng.choice(['/w', '/app', '/srv/dir'])}\n")

    def _copy_from(self, stage: dict) -> None:
        sources = [s for s in self.stages[1:] if s["outputs"]]
        source = self.rng.choice(sources)
        path = self.rng.choice(source["outputs"])
        dest = self.rng.choice(["/from/", f"/from{self.rng.randint(0, 9)}"])
        self.lines.append(f"COPY {self._flags()}--from={source['name']} {path} {dest}\n")
        stage["outputs"].append(dest.rstrip("/") if dest.endswith("/") else dest)

    def _run(self, stage: dict) -> None:
        self.runs += 1
        out = f"/out/r{self.runs}.txt"
        readable = [p for p in stage["outputs"] if "." in p.rsplit("/", 1)[-1]]
        if readable and self.rng.random() < 0.6:
            src = self.rng.choice(readable)
            command = f"mkdir -p /out && (cat {src} 2>/dev/null; echo {self.token}) > {out}"
        else:
            command = f"mkdir -p /out && echo {self.token} run{self.runs} > {out}"
        self.lines.append(f"RUN {command}\n")
        stage["outputs"].append(out)

    def _run_mount(self, stage: dict) -> None:
        self.runs += 1
        source = self.rng.choice([*self.sent_files(), *self.sent_folders()])
        self.named.add(source)
        out = f"/out/m{self.runs}.txt"
        self.lines.append(
            f"RUN --mount=type=bind,source={source},target=/mnt/m mkdir -p /out && "
            f"(ls -R /mnt/m; echo {self.token}) > {out}\n"
        )
        stage["outputs"].append(out)

    def _arg_run(self, stage: dict) -> None:
        self.runs += 1
        self.build_args.setdefault("V", "1")
        out = f"/out/a{self.runs}.txt"
        self.lines.append(f"ARG V=0\nRUN mkdir -p /out && echo {self.token} $V > {out}\n")
        stage["outputs"].append(out)

    def _env_run(self, stage: dict) -> None:
        self.runs += 1
        out = f"/out/e{self.runs}.txt"
        self.lines.append(f"ENV E{self.runs}=one\nRUN mkdir -p /out && echo {self.token} $E{self.runs} > {out}\n")
        stage["outputs"].append(out)

    def _arg_copy(self, stage: dict) -> None:
        """`COPY ${DIR}/x` with a build arg choosing the folder: only the base name is keyed."""
        with_same = [f for f in FOLDERS if not _ignored(f, self.ignore)]
        if len(with_same) < 2:
            return self._copy_file(stage)
        one, two = self.rng.sample(with_same, 2)
        name = f"same{self.rng.randint(0, 3)}.txt"
        for folder in (one, two):
            self.files[f"{folder}/{name}"] = f"{self.token} same\n"
            self.named.add(f"{folder}/{name}")
        self.build_args["DIR"] = one
        self.lines.append(f"ARG DIR={one}\nCOPY ${{DIR}}/{name} /same/\n")
        stage["outputs"].append(f"/same/{name}")
        self.switch = (two, one)

    # -- changes ----------------------------------------------------------------------
    def make_phases(self, dockerfile: str) -> list[list[Change]]:
        rng = self.rng
        self.present = set(self.files)  # what the context holds after the changes made so far
        phases: list[list[Change]] = []
        edited: list[str] = []
        for _ in range(rng.randint(1, 4)):
            phase = []
            for _ in range(rng.randint(1, 2)):
                phase.append(self.change(edited, dockerfile))
            phases.append(phase)
        return phases

    def change(self, edited: list[str], dockerfile: str) -> Change:
        rng = self.rng
        kinds = ["write", "write", "write", "chmod", "add", "remove", "touch"]
        if edited:
            kinds += ["revert", "revert"]
        if self.build_args:
            kinds.append("build_arg")
        if "ENV E" in dockerfile or "echo" in dockerfile:
            kinds.append("dockerfile")
        kind = rng.choice(kinds)
        files = sorted(self.present)
        if kind == "write":
            path = rng.choice(files)
            if path in self.files:  # a file of the first build: it can be put back later
                edited.append(path)
            return Change("write", path, self.content(path, rng.randint(1, 9)))
        if kind == "revert":
            path = rng.choice(edited)
            self.present.add(path)
            return Change("write", path, self.files[path])
        if kind == "chmod":
            return Change("chmod", rng.choice(files), mode=rng.choice([0o755, 0o600, 0o644]))
        if kind == "add":
            folder = rng.choice([*FOLDERS, ""])
            path = f"{folder}/new{rng.randint(0, 99)}.{rng.choice(['txt', 'md', 'log', 'json'])}".lstrip("/")
            self.present.add(path)
            return Change("add", path, self.content(path, 0))
        if kind == "remove":
            removable = [p for p in files if p not in self.named and not any(p.startswith(n + "/") for n in self.named)]
            if removable:
                path = rng.choice(removable)
                self.present.discard(path)
                return Change("remove", path)
            return Change("touch", rng.choice(files))
        if kind == "touch":
            return Change("touch", rng.choice(files))
        if kind == "build_arg":
            name = rng.choice(sorted(self.build_args))
            if name == "DIR":
                return Change("build_arg", name=name, value=rng.choice(self.switch))
            return Change("build_arg", name=name, value=rng.choice(["1", "2", "3"]))
        # A Dockerfile edit: an ENV value or a RUN's text; the rest stays.
        if "ENV E" in dockerfile and rng.random() < 0.5:
            edited_text = dockerfile.replace("=one\n", f"={rng.choice(['two', 'one'])}\n", 1)
        else:
            edited_text = dockerfile.replace(f"echo {self.token} ", f"echo {self.token} edited ", 1)
        return Change("dockerfile", content=edited_text)


def make_scenario(seed: int) -> Scenario:
    maker = _Maker(seed)
    maker.make_context()
    dockerfile = maker.make_dockerfile()
    phases = maker.make_phases(dockerfile)
    ignore = "\n".join(maker.ignore) + "\n" if maker.ignore else None
    return Scenario(seed, dict(maker.files), ignore, dockerfile, dict(maker.build_args), phases)
