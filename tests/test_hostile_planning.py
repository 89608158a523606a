"""Planning and step keys do work linear in the Dockerfile's size, counted
(Python calls while parsing, planning and keying), never timed.

Found before: a COPY --from of a stage of many RUNs read every RUN of that
stage again (1,000 RUNs and 1,000 copies: 2.5 s, 4,000 of each: 41 s),
every stage built on a stage another one was built on first copied its
writes (2,000 RUNs and 500 stages on them: 28 s), and every RUN counted the
stage's earlier steps to number itself. What still
grows faster than the Dockerfile is the environment each RUN's key covers
(every ARG and ENV in scope, as in BuildKit): that is bounded by a cap
with an error naming the line.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

import pytest

from ctxwatchd import limits
from ctxwatchd.cache.keys import compute_keys
from ctxwatchd.dockerfile.parser import parse
from ctxwatchd.dockerfile.plan import PlanError, build_plan

STEPS = 400  # and twice as many: small, since the work is counted, not timed


def env_and_run(steps: int) -> str:
    """ENV and RUN lines in turn: each RUN's environment holds every ENV before it."""
    lines = ["FROM alpine"]
    for i in range(steps // 2):
        lines += [f"ENV V{i}=value{i}", f"RUN echo {i}"]
    return "\n".join(lines) + "\n"


def copies_from_runs(steps: int) -> str:
    """A stage of RUNs, then as many COPY --from of it, each of another path."""
    lines = ["FROM alpine AS many", *(f"RUN echo {i}" for i in range(steps // 2)), "FROM alpine"]
    lines += [f"COPY --from=many /f{i} /app/{i}" for i in range(steps // 2)]
    return "\n".join(lines) + "\n"


def copies_of_copies(steps: int) -> str:
    """RUNs, then COPY --from of a stage that itself copied from the RUNs' stage."""
    lines = ["FROM alpine AS many", *(f"RUN echo {i}" for i in range(steps // 4)), "FROM alpine AS mid"]
    lines += [*(f"COPY --from=many /f{i} /mid/{i}" for i in range(steps // 4)), "RUN true", "FROM alpine"]
    lines += [f"COPY --from=mid /mid/{i} /app/{i}" for i in range(steps // 2)]
    return "\n".join(lines) + "\n"


def stages_on_runs(steps: int) -> str:
    """Many stages built on one stage of RUNs, each adding a step, and a last one copying from each."""
    lines = ["FROM alpine AS many", *(f"RUN echo {i}" for i in range(steps // 2))]
    for i in range(steps // 8):
        lines += [f"FROM many AS b{i}", "RUN true"]
    lines += ["FROM alpine", *(f"COPY --from=b{i} /x /y{i}" for i in range(steps // 8))]
    return "\n".join(lines) + "\n"


def python_calls(text: str) -> int:
    """Python functions entered (generators resumed included) while the Dockerfile is parsed, planned and keyed."""
    calls = 0

    def count(frame, event, arg) -> None:
        nonlocal calls
        calls += event == "call"

    data = text.encode()
    sys.setprofile(count)
    try:
        plan = build_plan(parse(data), text.splitlines(), {}, "", {})
        keys = compute_keys(plan, lambda excludes: pytest.fail("no step reads the context"))
    finally:
        sys.setprofile(None)
    assert len(keys) == len(plan.steps) > STEPS // 2
    return calls


@pytest.mark.parametrize("shape", [env_and_run, copies_from_runs, copies_of_copies, stages_on_runs])
def test_twice_the_steps_take_twice_the_work(shape: Callable[[int], str]):
    once, twice = python_calls(shape(STEPS)), python_calls(shape(2 * STEPS))
    # Linear work doubles (plus a constant); quadratic work would be about 4 times.
    assert twice <= 2.2 * once, (once, twice)


def test_the_environments_of_every_run_together_are_capped_with_the_line():
    # Each RUN keeps and hashes its environment: 2,000 pairs hold about a million variables together.
    text = env_and_run(4000)
    with pytest.raises(PlanError) as raised:
        build_plan(parse(text.encode()), text.splitlines(), {}, "", {})
    assert f"exceed {limits.MAX_RUN_ENVIRONMENT_BYTES} bytes together" in str(raised.value)
    line = raised.value.line
    assert text.splitlines()[line - 1].startswith("RUN echo ")
    # The line is where the running total passes the cap: the RUNs before it fit.
    within = "\n".join(text.splitlines()[: line - 1]) + "\n"
    build_plan(parse(within.encode()), within.splitlines(), {}, "", {})
