"""The committed stubs are exactly what proto/generate.sh makes from proto/."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
STUBS = ("ctxwatch_pb2.py", "ctxwatch_pb2.pyi", "ctxwatch_pb2_grpc.py")


@pytest.fixture(scope="module")
def regenerated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("bash") is None:
        pytest.fail("bash is needed to run proto/generate.sh")
    out = tmp_path_factory.mktemp("stubs")
    # The script runs `python -m grpc_tools.protoc`: make `python` this interpreter.
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    result = subprocess.run(
        ["bash", "proto/generate.sh", str(out)],
        check=False,
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, result.stderr
    return out / "v1"


@pytest.mark.parametrize("name", STUBS)
def test_regenerated_stub_is_byte_identical(regenerated, name):
    fresh = (regenerated / name).read_bytes()
    committed = (REPO / "proto" / "ctxwatch_api" / "v1" / name).read_bytes()
    assert fresh, f"{name} was not generated"
    assert fresh == committed, f"proto/ctxwatch_api/v1/{name} is stale: run `bash proto/generate.sh`"


def test_generation_makes_nothing_else(regenerated):
    made = sorted(p.relative_to(regenerated.parent).as_posix() for p in regenerated.parent.rglob("*") if p.is_file())
    assert made == [f"v1/{name}" for name in sorted(STUBS)]
