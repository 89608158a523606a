"""ctxwatch against the real BuildKit on seeded random scenarios (tests/differential/).

A small fixed sample runs here; `python -m tests.differential --seeds 0-499`
runs as many as asked and prints every disagreement with its scenario.
"""

from __future__ import annotations

import pytest
from differential.compare import run_scenario
from differential.scenarios import make_scenario
from support.buildkit import Builder

SEEDS = [1, 2, 7, 11, 26]  # a spread of shapes; 11 and 26 start a stage with WORKDIR on scratch


@pytest.mark.parametrize("seed", SEEDS)
def test_scenario_agrees_with_buildkit(own_buildkit: Builder, seed: int) -> None:
    scenario = make_scenario(seed)
    outcome = run_scenario(scenario, own_buildkit)
    compared = sum(outcome.counts.values())
    assert not outcome.problems, "\n".join(outcome.problems) + "\n" + scenario.describe()
    assert compared > 0, scenario.describe()
    assert not outcome.disagreements, "\n".join(map(str, outcome.disagreements)) + "\n" + scenario.describe()
    # An unknown says why (the re-run step whose output it reads).
    assert all("step" in u.explanation for u in outcome.unknowns), "\n".join(map(str, outcome.unknowns))
