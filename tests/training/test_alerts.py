"""The alerts part of the tracker (training/alerts.py): what it sends, when, where, and what it never does.

Most tests drive a :class:`FairnessTracker` over :class:`support.ScriptedMetricsProbe` (scripted gaps,
no model) with a callable that records its calls; the rate limit runs on a scripted clock. W&B is a
real offline run: offline, ``run.alert`` writes an ``AlertRecord`` to the run's ``.wandb`` file, read
back here (:func:`support.read_wandb_alerts`). Trackio is a stand-in module put in ``sys.modules``
(Trackio is not in the test environment); ``test_a_real_trackio_run_records_the_alert`` runs against
the real one where it is installed. Two real gloo ranks: only rank 0 sends (``tests/dist/alerts.py``).
"""

from __future__ import annotations

import enum
import json
import logging
import sys
import types
from contextvars import ContextVar
from pathlib import Path

import pytest

from fairness_callback import FairnessTracker, ProbeSuite
from fairness_callback.training import alerts as alerts_module
from fairness_callback.training.alerts import Alerts, resolve_callable
from support import ScriptedMetricsProbe, offline_wandb, point_rule, read_wandb_alerts, run_script, torchrun

MODEL = None  # the scripted probe runs no model


class Recorder:
    """An ``on_alert(title, text)`` that keeps its calls."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    def __call__(self, title: str, text: str) -> None:
        self.calls.append((title, text))

    @property
    def titles(self) -> list[str]:
        return [title for title, _ in self.calls]


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def train(tracker: FairnessTracker, steps: int, stop: bool = True) -> list:
    """``start`` then ``step`` 1..steps; leaves the loop at a stop unless ``stop`` is False."""
    outcomes = [tracker.start(MODEL)]
    for step in range(1, steps + 1):
        outcomes.append(tracker.step(MODEL, step))
        if stop and outcomes[-1].should_stop:
            break
    return outcomes


# -- the stop -----------------------------------------------------------------------------------------


def test_the_stop_sends_one_alert_with_the_step_and_the_stop_line(tmp_path):
    history = tmp_path / "h.jsonl"
    record = Recorder()
    tracker = FairnessTracker(
        every_n_steps=1,
        probe=ScriptedMetricsProbe([0.01, 0.02, 0.03, 0.04, 0.05]),
        early_stopping=point_rule(patience=2),
        history_path=history,
        alerts=Alerts(record),
    )
    outcomes = train(tracker, 6, stop=False)  # a loop that ignores should_stop: the rule fires again
    assert [o.step for o in outcomes if o.should_stop][:2] == [2, 3]
    ((title, text),) = record.calls  # once a run, and nothing else by default (no gap level, no failures)
    assert title == "Fairness stop at step 2"
    lines = text.splitlines()
    assert lines[0] == outcomes[2].message
    assert "stopping at step 2" in lines[0] and "jsdp/gap 0.03" in lines[0]
    assert "reason: gap_grew_no_loss" in lines
    assert f"run {tracker.run_id}" in lines and f"history {history}" in lines
    # A new run (reset: a second fit with the same callback) alerts its own stop.
    tracker.reset()
    tracker.probe = ScriptedMetricsProbe([0.01, 0.02, 0.03])
    train(tracker, 4)
    assert record.titles == ["Fairness stop at step 2", "Fairness stop at step 2"]


def test_on_stop_false_sends_no_stop_alert():
    record = Recorder()
    tracker = FairnessTracker(
        every_n_steps=1,
        probe=ScriptedMetricsProbe([0.01, 0.02, 0.03]),
        early_stopping=point_rule(patience=2),
        alerts=Alerts(record, on_stop=False),
    )
    assert train(tracker, 4)[-1].should_stop
    assert record.calls == []


# -- the gap level ------------------------------------------------------------------------------------


def test_a_gap_over_the_level_alerts_once_and_is_not_rearmed():
    record = Recorder()
    # |gap| reaches 0.1 at step 2 (negative: the size counts), falls back at 4, crosses again at 5.
    tracker = FairnessTracker(
        every_n_steps=1,
        probe=ScriptedMetricsProbe([0.02, 0.05, -0.12, 0.2, 0.03, 0.15]),
        alerts=Alerts(record, gap_level=0.1, min_interval_s=0),
    )
    train(tracker, 5)
    ((title, text),) = record.calls
    assert title == "Fairness gap over 0.1 at step 2"
    assert text.splitlines()[0] == "jsdp/gap = -0.12 at step 2 (|value| >= 0.1)"
    assert tracker.alerts.state_dict() == {"over_level": ["jsdp/gap"]}


def test_probes_of_a_suite_crossing_together_share_one_alert_each_key_once():
    record = Recorder()
    probes = {
        "gender": ScriptedMetricsProbe([0.0, 0.3, 0.3, 0.3]),
        "religion": ScriptedMetricsProbe([0.0, -0.25, 0.0, 0.4]),
        "race": ScriptedMetricsProbe([0.0, 0.0, 0.0, 0.5]),
    }
    tracker = FairnessTracker(every_n_steps=1, probes=probes, alerts=Alerts(record, gap_level=0.2, min_interval_s=0))
    assert isinstance(tracker.probe, ProbeSuite)
    train(tracker, 3)
    assert record.titles == ["Fairness gap over 0.2 at step 1", "Fairness gap over 0.2 at step 3"]
    first, second = (text.splitlines() for _, text in record.calls)
    assert first[:2] == [
        "gender/jsdp/gap = +0.3 at step 1 (|value| >= 0.2)",
        "religion/jsdp/gap = -0.25 at step 1 (|value| >= 0.2)",
    ]
    assert second[0] == "race/jsdp/gap = +0.5 at step 3 (|value| >= 0.2)" and "religion" not in second[1]


# -- failures -----------------------------------------------------------------------------------------


def test_a_failed_probe_alerts_only_when_asked(caplog):
    quiet, loud = Recorder(), Recorder()
    for record, on_failure in ((quiet, False), (loud, True)):
        tracker = FairnessTracker(
            every_n_steps=1, probe=ScriptedMetricsProbe([0.01], fail_on=(1,)), alerts=Alerts(record, on_failure=on_failure)
        )
        with caplog.at_level(logging.ERROR, logger="fairness_callback"):
            outcomes = train(tracker, 2)
        assert outcomes[1].failed and outcomes[2].metrics is not None  # training went on
    assert quiet.calls == []
    ((title, text),) = loud.calls
    assert title == "Fairness probe failed at step 1"
    assert text.splitlines()[:2] == [
        "the probe failed at step 1 on rank 0: RuntimeError: scripted probe failure (run 1)",
        "training goes on",
    ]


def test_with_on_error_raise_the_failure_alert_goes_out_before_the_error():
    record = Recorder()
    tracker = FairnessTracker(
        every_n_steps=1,
        probe=ScriptedMetricsProbe([0.01], fail_on=(1,)),
        on_error="raise",
        alerts=Alerts(record, on_failure=True),
    )
    tracker.start(MODEL)
    with pytest.raises(RuntimeError, match="scripted probe failure"):
        tracker.step(MODEL, 1)
    ((title, text),) = record.calls
    assert title == "Fairness probe failed at step 1" and "training stops with the error (on_error='raise')" in text


def test_a_failing_stop_rule_alerts_as_a_failure():
    class BrokenRule(type(point_rule())):  # type: ignore[misc]
        def step(self, step, metrics, units=None):
            raise ZeroDivisionError("rule bug")

    record = Recorder()
    tracker = FairnessTracker(
        every_n_steps=1, probe=ScriptedMetricsProbe([0.01]), early_stopping=BrokenRule(), alerts=Alerts(record, on_failure=True)
    )
    tracker.start(MODEL)
    ((title, text),) = record.calls
    assert title == "Fairness stop rule failed at step 0" and "fairness early stopping failed at step 0" in text


# -- the rate limit -----------------------------------------------------------------------------------


def test_the_rate_limit_holds_back_gaps_and_failures_never_the_stop():
    clock, record = Clock(), Recorder()
    alerts = Alerts(record, gap_level=0.1, on_failure=True, min_interval_s=600, clock=clock)
    failure = {None: {0: "RuntimeError: boom"}}
    assert alerts.failed(1, failure)  # t = 0: sent
    clock.now = 100
    assert not alerts.failed(2, failure)  # held back
    assert not alerts.probed(3, {"jsdp/gap": 0.5}, ["jsdp/gap"])  # held back: the key stays armed
    assert alerts.held_back == 2
    clock.now = 200
    assert alerts.stopped(4, "stopping at step 4: ...")  # never held back
    assert "(2 earlier alert(s) held back by the rate limit, min_interval_s=600)" in record.calls[-1][1]
    clock.now = 700  # within 600 s of the stop alert
    assert not alerts.probed(5, {"jsdp/gap": 0.5}, ["jsdp/gap"])
    clock.now = 900
    assert alerts.probed(6, {"jsdp/gap": 0.4}, ["jsdp/gap"])  # still over the level: sent now
    assert not alerts.probed(7, {"jsdp/gap": 0.9}, ["jsdp/gap"])  # once per key
    assert record.titles == [
        "Fairness probe failed at step 1",
        "Fairness stop at step 4",
        "Fairness gap over 0.1 at step 6",
    ]
    assert not alerts.stopped(8, "again")  # once a run
    assert alerts.sent == 3


# -- never into training ------------------------------------------------------------------------------


def test_a_raising_destination_is_logged_and_training_goes_on(caplog):
    def broken(title: str, text: str) -> None:
        raise ConnectionError("slack is down")

    class BrokenRun:
        def alert(self, **kwargs):
            raise ConnectionError("wandb is down")

    tracker = FairnessTracker(
        every_n_steps=1,
        probe=ScriptedMetricsProbe([0.01, 0.2, 0.3, 0.4]),
        early_stopping=point_rule(patience=2),
        alerts=Alerts(broken, gap_level=0.1, on_failure=True),
    )
    tracker.alerts.use_wandb(BrokenRun())
    with caplog.at_level(logging.WARNING, logger="fairness_callback"):
        outcomes = train(tracker, 4)
    assert outcomes[-1].should_stop and outcomes[-1].step == 2 and tracker.stopped_reason is not None
    sent = [r.getMessage() for r in caplog.records if "could not be sent" in r.getMessage()]
    assert sent == [
        "fairness alert 'Fairness gap over 0.1 at step 1' could not be sent to W&B; training goes on",
        "fairness alert 'Fairness gap over 0.1 at step 1' could not be sent to on_alert; training goes on",
        "fairness alert 'Fairness stop at step 2' could not be sent to W&B; training goes on",
        "fairness alert 'Fairness stop at step 2' could not be sent to on_alert; training goes on",
    ]
    assert all(r.exc_info for r in caplog.records if "could not be sent" in r.getMessage())


def test_one_failing_destination_does_not_keep_the_alert_from_the_others():
    class BrokenRun:
        def alert(self, **kwargs):
            raise ConnectionError("wandb is down")

    record = Recorder()
    alerts = Alerts(record)
    alerts.use_wandb(BrokenRun())
    assert alerts.stopped(3, "stopping at step 3")
    assert record.titles == ["Fairness stop at step 3"]


def test_only_rank_zero_sends(monkeypatch):
    record = Recorder()
    alerts = Alerts(record, gap_level=0.1, on_failure=True, min_interval_s=0)
    monkeypatch.setattr(alerts_module, "is_rank_zero", lambda: False)
    assert not alerts.stopped(1, "stop")
    assert not alerts.probed(1, {"jsdp/gap": 0.5}, ["jsdp/gap"])
    assert not alerts.failed(1, {None: {1: "RuntimeError: x"}})
    assert not alerts.send("title", "text")
    assert record.calls == [] and alerts.state_dict() == {"over_level": []}


@pytest.mark.slow
@pytest.mark.distributed
def test_two_ranks_send_each_alert_once_from_rank_zero(tmp_path):
    torchrun(Path(__file__).parents[1] / "dist" / "alerts.py", str(tmp_path), tmp_path=tmp_path, timeout=180)
    rank0, rank1 = (json.loads((tmp_path / f"alerts-rank{r}.json").read_text()) for r in range(2))
    assert rank1 == {"rank1_stops": [], "rank1_fails": [], "both_cross": []}
    # Rank 1's rule fired (its gap grew), rank 0's did not: the vote stops both, rank 0 alerts once.
    ((title, text),) = rank0["rank1_stops"]
    assert title == "Fairness stop at step 2" and "another rank's fairness early stopping fired (gap_grew_no_loss)" in text
    ((title, text),) = rank0["rank1_fails"]
    assert title == "Fairness probe failed at step 1"
    assert "the probe failed at step 1 on rank 1: RuntimeError: scripted probe failure (run 1)" in text
    assert [title for title, _ in rank0["both_cross"]] == ["Fairness gap over 0.1 at step 2"]


# -- the callable's forms -----------------------------------------------------------------------------


def test_on_alert_as_a_dotted_path(tmp_path, monkeypatch):
    (tmp_path / "alert_sink_for_tests.py").write_text(
        "CALLS = []\n\ndef record(title, text):\n    CALLS.append((title, text))\n\nclass Hooks:\n    page = record\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    for path in ("alert_sink_for_tests.record", "alert_sink_for_tests:record", "alert_sink_for_tests:Hooks.page"):
        alerts = Alerts(path)
        assert alerts.on_alert_path == path and alerts.on_alert is resolve_callable("alert_sink_for_tests.record")
        assert alerts.stopped(7, "stopping at step 7")
        assert path in repr(alerts)
    module = sys.modules["alert_sink_for_tests"]
    assert [title for title, _ in module.CALLS] == ["Fairness stop at step 7"] * 3


@pytest.mark.parametrize(
    "path, error",
    [
        (
            "no_such_package_for_alerts.notify",
            r"on_alert='no_such_package_for_alerts.notify': module 'no_such_package_for_alerts' cannot be imported \(ModuleNotFoundError",
        ),
        ("json.no_such_function", r"on_alert='json.no_such_function': 'json' has no attribute 'no_such_function'"),
        ("math.pi", r"on_alert='math.pi' names a float, not a callable"),
        ("notify", r"on_alert='notify' is not a dotted path"),
        ("", r"on_alert must be a callable or a dotted path"),
    ],
)
def test_a_bad_dotted_path_is_an_error_naming_it(path, error):
    with pytest.raises(ValueError, match=error):
        Alerts(path)


@pytest.mark.parametrize(
    "kwargs, error",
    [
        ({"on_alert": 42}, "on_alert must be a callable"),
        ({"gap_level": 0}, "gap_level must be a number > 0"),
        ({"gap_level": -0.1}, "gap_level must be a number > 0"),
        ({"gap_level": "0.1"}, "gap_level must be a number > 0"),
        ({"min_interval_s": -1}, "min_interval_s must be a number of seconds >= 0"),
        ({"on_failure": "yes"}, "on_failure must be True or False"),
        ({"wandb": "auto"}, "wandb must be None"),
    ],
)
def test_bad_arguments_are_refused(kwargs, error):
    with pytest.raises(ValueError, match=error):
        Alerts(**kwargs)
    with pytest.raises(TypeError, match="alerts must be an Alerts"):
        FairnessTracker(probe=ScriptedMetricsProbe(), alerts=print)  # type: ignore[arg-type]


def test_plain_values_build_it_as_a_config_would():
    alerts = Alerts(on_alert=None, on_stop=True, gap_level=1, on_failure=True, min_interval_s=0, wandb=False, trackio=None)
    assert (alerts.gap_level, alerts.min_interval_s) == (1.0, 0.0)
    assert not alerts.stopped(1, "stop")  # nowhere to send: no W&B, no Trackio, no callable


def test_a_configuration_blocks_alerts_build_it(tmp_path, monkeypatch):
    from fairness_callback.integrations.config import ConfigError, FairnessConfig

    (tmp_path / "alert_hook_for_config.py").write_text("def page(title, text):\n    pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    block = {
        "gap_level": 0.1,
        "on_failure": True,
        "on_stop": True,
        "min_interval_s": 60,
        "on_alert": "alert_hook_for_config.page",
    }
    alerts = FairnessConfig.from_mapping({"alerts": block}).callback_kwargs()["alerts"]
    assert isinstance(alerts, Alerts) and (alerts.gap_level, alerts.min_interval_s) == (0.1, 60.0)
    assert alerts.on_alert_path == "alert_hook_for_config.page"
    with pytest.raises(ConfigError, match=r"config\.alerts: on_alert='alert_hook_for_config\.pager': .* has no attribute"):
        FairnessConfig.from_mapping({"alerts": {"on_alert": "alert_hook_for_config.pager"}})


# -- resume -------------------------------------------------------------------------------------------


def test_a_resumed_run_remembers_the_keys_over_the_level():
    first = Recorder()
    tracker = FairnessTracker(every_n_steps=1, probe=ScriptedMetricsProbe([0.3]), alerts=Alerts(first, gap_level=0.1))
    train(tracker, 2)
    state = json.loads(json.dumps(tracker.state_dict()))  # as a checkpoint keeps it
    assert state["alerts"] == {"over_level": ["jsdp/gap"]}
    again = Recorder()
    resumed = FairnessTracker(every_n_steps=1, probe=ScriptedMetricsProbe([0.3]), alerts=Alerts(again, gap_level=0.1))
    resumed.load_state_dict(state)
    resumed.start(MODEL, step=2)
    resumed.step(MODEL, 3)
    assert len(first.calls) == 1 and again.calls == []
    assert "alerts" not in FairnessTracker(probe=ScriptedMetricsProbe()).state_dict()


# -- W&B and Trackio ----------------------------------------------------------------------------------


def test_wandb_is_never_imported_to_look(monkeypatch):
    monkeypatch.delitem(sys.modules, "wandb", raising=False)
    monkeypatch.delitem(sys.modules, "trackio", raising=False)
    record = Recorder()
    assert Alerts(record).stopped(1, "stop") and record.calls
    assert "wandb" not in sys.modules and "trackio" not in sys.modules


def test_the_global_wandb_run_gets_the_alert_with_its_level(monkeypatch):
    class Run:
        def __init__(self) -> None:
            self.alerts: list[dict] = []

        def alert(self, **kwargs) -> None:
            self.alerts.append(kwargs)

    levels = enum.Enum("AlertLevel", {"INFO": "INFO", "WARN": "WARN", "ERROR": "ERROR"})
    run = Run()
    monkeypatch.setitem(sys.modules, "wandb", types.SimpleNamespace(run=run, AlertLevel=levels))
    alerts = Alerts(on_failure=True, min_interval_s=0)
    assert alerts.stopped(4, "stopping at step 4")
    assert alerts.failed(5, {None: {0: "RuntimeError: x"}})
    assert [(a["title"], a["level"]) for a in run.alerts] == [
        ("Fairness stop at step 4", levels.WARN),
        ("Fairness probe failed at step 5", levels.ERROR),
    ]
    off = Run()
    monkeypatch.setitem(sys.modules, "wandb", types.SimpleNamespace(run=off, AlertLevel=levels))
    assert not Alerts(wandb=False).stopped(4, "stop") and off.alerts == []


def test_the_run_given_as_log_gets_the_alerts_as_does_the_wandb_module_given():
    class Run:
        def __init__(self) -> None:
            self.alerts: list[dict] = []

        def alert(self, **kwargs) -> None:
            self.alerts.append(kwargs)

        def define_metric(self, *args, **kwargs) -> None:
            pass

        def log(self, *args, **kwargs) -> None:
            pass

    run = Run()
    tracker = FairnessTracker(
        every_n_steps=1, probe=ScriptedMetricsProbe([0.3]), log=run, alerts=Alerts(gap_level=0.1, wandb=True)
    )
    train(tracker, 0)
    assert [a["title"] for a in run.alerts] == ["Fairness gap over 0.1 at step 0"]
    module = types.ModuleType("wandb_like")
    module.run = Run()  # type: ignore[attr-defined]
    alerts = Alerts()
    alerts.use_wandb(module)
    assert alerts.stopped(2, "stop") and [a["title"] for a in module.run.alerts] == ["Fairness stop at step 2"]  # type: ignore[attr-defined]


def test_wandb_true_without_a_run_warns(monkeypatch, caplog):
    monkeypatch.delitem(sys.modules, "wandb", raising=False)
    record = Recorder()
    with caplog.at_level(logging.WARNING, logger="fairness_callback"):
        assert Alerts(record, wandb=True).stopped(1, "stop")
    assert "wandb=True but no W&B run is active" in caplog.text and record.calls


def fake_trackio(run: object | None) -> tuple[types.ModuleType, list[dict]]:
    """A stand-in for the ``trackio`` module (0.43's API: ``alert(title, text, level)``,
    ``AlertLevel``, and the current run in ``context_vars.current_run``)."""
    sent: list[dict] = []
    module = types.ModuleType("trackio")
    module.AlertLevel = enum.Enum("AlertLevel", {"INFO": "info", "WARN": "warn", "ERROR": "error"})  # type: ignore[attr-defined]
    current: ContextVar[object | None] = ContextVar("current_run", default=None)
    current.set(run)
    module.context_vars = types.SimpleNamespace(current_run=current)  # type: ignore[attr-defined]
    module.alert = lambda title, text=None, level=None: sent.append({"title": title, "text": text, "level": level})  # type: ignore[attr-defined]
    return module, sent


def test_an_active_trackio_run_gets_the_alert(monkeypatch):
    module, sent = fake_trackio(run=object())
    monkeypatch.setitem(sys.modules, "trackio", module)
    alerts = Alerts(gap_level=0.1, min_interval_s=0)
    assert alerts.probed(3, {"jsdp/gap": 0.2}, ["jsdp/gap"])
    ((alert,),) = [sent]
    assert alert["title"] == "Fairness gap over 0.1 at step 3" and alert["level"] is module.AlertLevel.WARN  # type: ignore[attr-defined]
    assert "jsdp/gap = +0.2 at step 3" in alert["text"]
    # No current run (trackio imported, never init-ed), or trackio=False: nothing.
    idle, idle_sent = fake_trackio(run=None)
    monkeypatch.setitem(sys.modules, "trackio", idle)
    assert not Alerts().stopped(1, "stop") and idle_sent == []
    monkeypatch.setitem(sys.modules, "trackio", module)
    assert not Alerts(trackio=False).stopped(1, "stop") and len(sent) == 1


@pytest.mark.slow
def test_a_real_trackio_run_records_the_alert(tmp_path, monkeypatch):
    """Against the real Trackio where it is installed (not in the test environment; checked with 0.43.0),
    in a process of its own, its files in ``tmp_path``: the alert is in the project's database."""
    pytest.importorskip("trackio")
    monkeypatch.setenv("TRACKIO_DIR", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    script = (
        "import json, trackio\n"
        "from fairness_callback.training.alerts import Alerts\n"
        "from trackio.sqlite_storage import SQLiteStorage\n"
        "trackio.init(project='fairness-alerts', name='run-1', auto_log_cpu=False)\n"
        "sent = Alerts(on_failure=True).failed(2, {'religion': {1: 'RuntimeError: x'}})\n"
        "trackio.finish()\n"
        "print(json.dumps({'sent': sent, 'stored': SQLiteStorage.get_alerts('fairness-alerts')}))\n"
    )
    done = run_script(["-c", script], tmp_path, timeout=120)
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert found["sent"]
    ((alert,),) = [found["stored"]]
    assert (alert["title"], alert["level"], alert["run"]) == ("Fairness probe failed at step 2", "error", "run-1")
    assert alert["text"].startswith("probe 'religion' failed at step 2 on rank 1: RuntimeError: x")


@pytest.mark.slow
def test_a_wandb_offline_run_records_the_alerts(tmp_path, monkeypatch):
    """Offline W&B keeps each ``run.alert`` as an ``AlertRecord`` in the run file (measured with wandb
    0.31; ``wandb sync`` sends them on): the run given as ``log=`` gets the tracker's alerts, and
    without one the global ``wandb.run`` does."""
    wandb = pytest.importorskip("wandb")
    offline_wandb(monkeypatch, tmp_path)
    run = wandb.init(project="fairness-callback-tests", mode="offline", dir=tmp_path)
    history = tmp_path / "h.jsonl"
    logged = FairnessTracker(
        every_n_steps=1,
        probe=ScriptedMetricsProbe([0.01, 0.02, 0.03]),
        early_stopping=point_rule(patience=2),
        history_path=history,
        log=run,
        alerts=Alerts(),
    )
    assert train(logged, 3)[-1].should_stop
    unlogged = FairnessTracker(
        every_n_steps=1, probe=ScriptedMetricsProbe([0.01], fail_on=(1,)), alerts=Alerts(gap_level=0.005, on_failure=True)
    )
    train(unlogged, 1)
    run.finish()
    (run_file,) = tmp_path.glob("wandb/offline-run-*/run-*.wandb")
    alerts = read_wandb_alerts(run_file)
    assert [(a["title"], a["level"]) for a in alerts] == [
        ("Fairness stop at step 2", "WARN"),
        ("Fairness gap over 0.005 at step 0", "WARN"),
    ]  # the failure at step 1 came within min_interval_s of the gap alert: held back
    assert "stopping at step 2" in alerts[0]["text"] and f"history {history}" in alerts[0]["text"]
    assert f"run {logged.run_id}" in alerts[0]["text"]
