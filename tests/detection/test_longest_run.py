"""The repeat-viewing rule's window search, checked against the plain definition."""

import random
from datetime import datetime, timedelta

import pytest

from detection.rules import longest_run

START = datetime(2026, 3, 1)


def by_definition(times, this, window):
    """For every first look, every look within the window of it; keep the largest run
    that includes ``this`` (the earliest on a tie)."""
    best = None
    for start in range(len(times)):
        run = [i for i in range(start, len(times)) if times[i] - times[start] <= window]
        if this in run and (best is None or len(run) > len(best)):
            best = run
    return best[0], best[-1]


@pytest.mark.parametrize("seed", range(200))
def test_one_pass_finds_the_same_run_as_the_definition(seed):
    rng = random.Random(seed)
    times = sorted(START + timedelta(hours=rng.randrange(0, 24 * 60)) for _ in range(rng.randrange(1, 40)))
    window = timedelta(days=rng.choice([1, 3, 7, 28]))
    this = rng.randrange(len(times))
    assert longest_run(times, this, window) == by_definition(times, this, window)


def test_looks_at_the_same_moment_and_on_the_window_edge_count():
    times = [START, START, START + timedelta(days=7), START + timedelta(days=7, seconds=1)]
    assert longest_run(times, 2, timedelta(days=7)) == (0, 2)
    assert longest_run(times, 3, timedelta(days=7)) == (2, 3)
