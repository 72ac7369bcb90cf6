"""The schedule part of the tracker: due steps, the budget interval, its state; pure questions."""

import pytest

from fairness_callback.training.schedule import ProbeSchedule, check_interval


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_due_at_multiples_not_yet_probed_and_asking_changes_nothing():
    schedule = ProbeSchedule(every_n_steps=5)
    assert [s for s in range(12) if schedule.is_due(s)] == [0, 5, 10]
    assert [s for s in range(12) if schedule.is_due(s)] == [0, 5, 10]  # the same when asked again
    schedule.probed(5, 1.0)
    assert not schedule.is_due(5) and schedule.is_due(10) and schedule.last_probed_step == 5


def test_budget_interval_from_training_time_per_step():
    clock = FakeClock()
    schedule = ProbeSchedule(every_n_steps=10, probe_budget=0.02, clock=clock)
    assert schedule.budget_interval(0, 2.0) == 0  # not started
    schedule.start_clock(0)
    assert schedule.budget_interval(0, 2.0) == 0  # no training step measured yet
    clock.now += 2.0  # the step-0 probe
    schedule.probed(0, 2.0)
    clock.now += 10.0  # ten steps of 1 s
    schedule.start_clock(5)  # a later call does not move the start
    clock.now += 2.0  # the step-10 probe, 2 s
    # 2 s probes at 2% of 1 s steps: ceil(2 / 0.02) = 100
    assert schedule.budget_interval(10, 2.0) == 100
    assert schedule.every_n_steps == 10  # asking changes nothing
    schedule.set_interval(100)
    assert schedule.state_dict() == {"every_n_steps": 100, "last_probed_step": 0}
    schedule.reset()
    assert (schedule.every_n_steps, schedule.last_probed_step) == (10, None)


def test_no_budget_keeps_the_interval():
    schedule = ProbeSchedule(every_n_steps=3)
    schedule.start_clock(0)
    assert schedule.budget_interval(9, 100.0) == 0


def test_state_round_trip():
    schedule = ProbeSchedule(every_n_steps=4)
    schedule.set_interval(8)
    schedule.probed(16, 0.5)
    again = ProbeSchedule(every_n_steps=4)
    again.load_state_dict(schedule.state_dict())
    assert (again.every_n_steps, again.last_probed_step) == (8, 16)
    assert not again.is_due(16) and again.is_due(24)


@pytest.mark.parametrize("bad", [0, -1, 2.5, True, "10", None])
def test_a_bad_interval_is_named(bad):
    with pytest.raises(ValueError, match="every_n_steps must be an int >= 1"):
        check_interval(bad)
    with pytest.raises(ValueError, match="every_n_steps"):
        ProbeSchedule(every_n_steps=bad)


@pytest.mark.parametrize("bad", [0.0, 1.0, -0.1, 2.0])
def test_a_bad_budget_is_named(bad):
    with pytest.raises(ValueError, match="probe_budget must be a fraction"):
        ProbeSchedule(every_n_steps=10, probe_budget=bad)
