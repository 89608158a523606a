"""python -m tests.differential --seeds 0-499: run seeded scenarios on the real
BuildKit and through ctxwatch, print right / unknown / wrong and every
disagreement with its scenario."""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: the test support package, as pytest sees it

from support.buildkit import BuildKitMissing, start_builder

from .compare import run_scenario
from .scenarios import make_scenario


def _seeds(text: str) -> list[int]:
    seeds: list[int] = []
    for part in text.split(","):
        first, _, last = part.partition("-")
        seeds += range(int(first), int(last or first) + 1)
    return seeds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.differential", description=__doc__)
    parser.add_argument("--seeds", default="0-99", help="seeds to run: 0-499, or 3,17,40-45")
    parser.add_argument("--show-unknown", action="store_true", help="also list every UNKNOWN step")
    args = parser.parse_args(argv)
    try:
        builder = start_builder()
    except (BuildKitMissing, RuntimeError) as e:  # not installed, or buildkitd would not start (it needs root)
        print(f"cannot run the real builder: {e}", file=sys.stderr)
        return 2
    totals: Counter = Counter()
    bad_seeds: set[int] = set()
    started = time.monotonic()
    try:
        for seed in _seeds(args.seeds):
            try:
                scenario = make_scenario(seed)
                outcome = run_scenario(scenario, builder)
            except Exception as e:  # one broken scenario must not end the run: it is reported
                print(f"PROBLEM seed {seed}: the run failed: {e!r}", flush=True)
                totals["failed runs"] += 1
                continue
            totals.update(outcome.counts)
            totals["scenarios"] += 1
            if totals["scenarios"] % 50 == 0:
                print(f"... {totals['scenarios']} scenarios: {_summary(totals)}", file=sys.stderr, flush=True)
            for problem in outcome.problems:
                print(f"PROBLEM {problem}", flush=True)
            for found in outcome.disagreements + (outcome.unknowns if args.show_unknown else []):
                kind = "WRONG" if found in outcome.disagreements else "UNKNOWN"
                print(f"{kind} {found}", flush=True)
            if outcome.disagreements and seed not in bad_seeds:
                bad_seeds.add(seed)
                print(scenario.describe(), "\n", flush=True)
    finally:
        builder.stop()
    print(f"{totals['scenarios']} scenarios in {time.monotonic() - started:.0f} s: {_summary(totals)}")
    return 1 if totals["wrong"] else 0


def _summary(totals: Counter) -> str:
    steps = totals["right"] + totals["unknown"] + totals["wrong"]
    share = f" (unknown {100 * totals['unknown'] / steps:.1f}%)" if steps else ""
    return (
        f"{steps} steps compared: right {totals['right']}, unknown {totals['unknown']}, wrong {totals['wrong']}{share}"
    )


if __name__ == "__main__":
    sys.exit(main())
