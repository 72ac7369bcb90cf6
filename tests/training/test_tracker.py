"""The framework-free engine: probe budget, with a fake clock (no training framework)."""

from types import SimpleNamespace

import pytest

from fairness_callback.training import tracker as tracker_module
from fairness_callback.training.tracker import FairnessTracker


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


class TwoSecondProbe:
    """Stands in for FairnessProbe: every run takes 2 s of the fake clock."""

    def __init__(self, clock):
        self.clock = clock

    def run(self, model, distributed=False):
        self.clock.now += 2.0
        return SimpleNamespace(metrics={"jsdp/gap": 0.01}, by_seed={})


def test_budget_sets_the_interval_from_measured_probe_and_step_times(monkeypatch, caplog):
    clock = FakeClock()
    monkeypatch.setattr(tracker_module.time, "perf_counter", clock)
    tracker = FairnessTracker(every_n_steps=10, probe=TwoSecondProbe(clock), probe_budget=0.02)
    tracker.start(model=None)
    assert tracker.every_n_steps == 10  # no training step measured yet
    for step in range(1, 10):
        clock.now += 1.0  # one second a training step
        assert not tracker.step(model=None, step=step).probed
    clock.now += 1.0
    with caplog.at_level("WARNING", logger="fairness_callback"):
        assert tracker.step(model=None, step=10).probed
    # 2 s probes at 2% of 1 s steps: every ceil(2 / 0.02) = 100 steps
    assert tracker.every_n_steps == 100
    assert "probing every 100 steps from now (was 10)" in caplog.text
    assert tracker.state_dict()["every_n_steps"] == 100
    tracker.reset()
    assert tracker.every_n_steps == 10


def test_budget_must_be_a_fraction():
    with pytest.raises(ValueError, match="probe_budget"):
        FairnessTracker(every_n_steps=10, probe_budget=2.0)
