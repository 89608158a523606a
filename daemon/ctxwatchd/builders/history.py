"""The builder's record of a build, asked through buildx (`buildx history`).

BuildKit keeps a history record of every build (its frontend options, status
and progress); buildx reads it from the builder named in the build's record,
over the same connection it built with, so the daemon asks buildx rather than
the builder itself. What it cannot learn raises HistoryUnavailable with why.
"""

from __future__ import annotations

import json
import os
import subprocess

from ctxwatch_api.progress import StepResult, read_progress

from ..config import BuilderSettings


class HistoryUnavailable(Exception):
    """The builder's history does not answer for this build; the message says why."""


def inspect(settings: BuilderSettings, builder: str, ref: str) -> dict:
    """`buildx history inspect REF --format json`: options, status, step counts."""
    done = _buildx(settings, ["history", "inspect", "--builder", builder, ref, "--format", "json"])
    try:
        record = json.loads(done.stdout)
    except json.JSONDecodeError:
        raise HistoryUnavailable(f"buildx history inspect printed no JSON: {done.stdout[:200]!r}") from None
    if not isinstance(record, dict):
        raise HistoryUnavailable("buildx history inspect printed no record")
    return record


def step_results(settings: BuilderSettings, builder: str, ref: str) -> list[StepResult]:
    """What BuildKit did for each step, from the progress it kept (`buildx history logs`)."""
    done = _buildx(settings, ["history", "logs", "--builder", builder, "--progress", "rawjson", ref])
    return read_progress((done.stderr + done.stdout).splitlines()).steps()


def _buildx(settings: BuilderSettings, args: list[str]) -> subprocess.CompletedProcess:
    env = {**os.environ, "BUILDX_CONFIG": str(settings.buildx_dir())}
    try:
        done = subprocess.run(
            [settings.buildx, *args],
            capture_output=True,
            text=True,
            errors="replace",
            env=env,
            timeout=settings.history_timeout,
            check=False,
        )
    except FileNotFoundError:
        raise HistoryUnavailable(f"{settings.buildx} not found (set [builder] buildx in the config file)") from None
    except subprocess.TimeoutExpired:
        raise HistoryUnavailable(f"buildx did not answer within {settings.history_timeout:g} s") from None
    except OSError as e:
        raise HistoryUnavailable(f"cannot run {settings.buildx}: {e.strerror or e}") from None
    if done.returncode != 0:
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        raise HistoryUnavailable(lines[-1] if lines else f"buildx exited with {done.returncode}")
    return done
