"""Bake files read as `docker buildx bake` reads them; compared with what the
real `buildx bake --print` prints for the same files and environment."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from support.buildkit import installed

from ctxwatch import bake

DATA = Path(__file__).parent / "data" / "bake"

# (folder under tests/data/bake, targets or groups asked for, environment)
CASES = [
    ("buildx", [], {}),
    ("buildx", ["validate", "release", "image-local", "test"], {"GO_VERSION": "1.22"}),
    ("buildkit", [], {}),
    ("buildkit", ["validate"], {}),
    ("buildkit", ["mod-outdated", "govulncheck", "image", "integration-tests-binaries"], {"TEST_CONTEXT": "x"}),
    ("buildkit", ["integration-tests"], {}),
    ("shop", [], {}),
    ("shop", ["ci", "docs"], {"TAG": "v2", "NO_CACHE_API": "true"}),
]


@pytest.mark.parametrize(("folder", "names", "environ"), CASES)
def test_same_as_buildx_bake_print(folder: str, names: list[str], environ: dict, tmp_path: Path) -> None:
    program = installed("buildx")
    if program is None:
        pytest.skip("buildx v0.36.1 is not installed (see .ci/run)")
    root = DATA / folder
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(tmp_path),
        "BUILDX_CONFIG": str(tmp_path / "buildx"),
        **environ,
    }
    printed = subprocess.run(
        [program, "bake", "--print", *names], cwd=root, env=env, capture_output=True, text=True, check=False
    )
    ours = bake.load(names=names, cwd=root, environ=environ)
    if printed.returncode != 0:
        pytest.fail(f"buildx bake --print failed: {printed.stderr}")
    theirs = json.loads(printed.stdout)["target"]
    fields = ("context", "dockerfile", "dockerfile-inline", "args", "target", "contexts", "no-cache", "no-cache-filter")
    expected = {name: {k: v for k, v in target.items() if k in fields} for name, target in theirs.items()}
    # Every target buildx builds is either evaluated the same, or reported as not evaluated (never wrong).
    for name, target in expected.items():
        if name in ours.targets:
            assert ours.targets[name].printed() == target, name
        else:
            assert any(name == p or name.startswith(p + "-") for p in ours.problems), (name, ours.problems)
    assert set(ours.targets) <= set(expected)


def test_buildx_2021_file_evaluates_fully() -> None:
    loaded = bake.load(names=["validate", "image-local"], cwd=DATA / "buildx", environ={"GO_VERSION": "1.22"})
    assert loaded.problems == {}
    assert list(loaded.targets) == ["lint", "validate-vendor", "validate-docs", "image-local"]
    assert loaded.targets["validate-vendor"].printed() == {
        "context": ".",
        "dockerfile": "./hack/dockerfiles/vendor.Dockerfile",
        "args": {"GO_VERSION": "1.22", "BUILDKIT_CONTEXT_KEEP_GIT_DIR": "1"},
        "target": "validate",
    }
    # inherits chains: image-local <- image <- meta-helper, binaries <- _common
    assert loaded.targets["image-local"].target == "binaries"


def test_buildkit_file_reports_what_it_does_not_evaluate() -> None:
    loaded = bake.load(names=["validate", "integration-tests"], cwd=DATA / "buildkit", environ={})
    # A matrix of maps with attribute access is evaluated; md5() is too.
    assert loaded.targets["lint-labs"].args["BUILDTAGS"] == "dfrunsecurity dfrundevice"
    assert loaded.targets["lint-yaml"].target == "yamllint"
    assert any(name.startswith("validate-dockerfile-") for name in loaded.targets)
    # A conditional is not: the target is left out, and the problem says which file, target and attribute.
    problem = loaded.problems["integration-tests"]
    assert "docker-bake.hcl: target 'integration-tests'" in problem
    assert "args" in problem or "contexts" in problem
    assert "integration-tests" not in loaded.targets


def test_shop_merge_order_inherits_matrix_and_env() -> None:
    loaded = bake.load(names=["ci", "docs"], cwd=DATA / "shop", environ={"TAG": "v2", "NO_CACHE_API": "true"})
    assert [Path(f).name for f in loaded.files] == [
        "docker-bake.json",
        "docker-bake.hcl",
        "docker-bake.override.hcl",
    ]
    assert list(loaded.targets) == ["api", "web", "worker-mail", "worker-billing", "tools", "docs"]
    api = loaded.targets["api"]
    assert api.args == {
        "BASE_IMAGE": "alpine:3.20",
        "TAG": "v2",
        "RELEASE": "v2-REGISTRY.EXAMPLE.COM/SHOP",
        "PORT": "8080",
    }
    assert api.no_cache is True  # a bool variable from the environment
    web = loaded.targets["web"]
    assert web.args["NODE_ENV"] == "staging"  # the override file wins
    assert web.contexts == {"shared": "./libs/shared", "base": "docker-image://node:20-alpine"}
    assert web.no_cache_filter == ["deps"]
    assert loaded.targets["worker-billing"].args["QUEUE"] == "billing"
    assert loaded.targets["tools"].dockerfile_inline == "FROM alpine:3.20\nCOPY libs/shared/ /shared/\n"
    assert loaded.targets["docs"].args == {"TITLE": "Shop v2"}


def test_registrations_resolve_paths_against_the_bake_folder() -> None:
    definition = bake.definition(bake.load(cwd=DATA / "shop", environ={}))
    regs = {r.member: r for r in definition.registrations}
    root = str(DATA / "shop")
    assert regs["api"].name == "shop-api"
    assert regs["api"].path == f"{root}/services/api"
    assert regs["api"].dockerfile == f"{root}/services/api/docker/Dockerfile"  # relative to the context
    assert regs["web"].build_contexts == {"shared": f"{root}/libs/shared", "base": "docker-image://node:20-alpine"}


def test_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(bake.BakeError, match="no bake file found"):
        bake.load(cwd=tmp_path, environ={})
    (tmp_path / "docker-bake.hcl").write_text('target "a" {\n  context = \n')
    with pytest.raises(bake.BakeError, match=r"docker-bake\.hcl: not valid HCL"):
        bake.load(cwd=tmp_path, environ={})
    (tmp_path / "docker-bake.hcl").write_text('target "a" {}\n')
    with pytest.raises(bake.BakeError, match="no target or group named 'b'"):
        bake.load(names=["b"], cwd=tmp_path, environ={})
    (tmp_path / "docker-bake.hcl").write_text('variable "V" {\n  default = false\n}\ntarget "a" {\n  no-cache = V\n}\n')
    with pytest.raises(bake.BakeError, match="V: 'maybe' from the environment is not a boolean"):
        bake.load(names=["a"], cwd=tmp_path, environ={"V": "maybe"})
