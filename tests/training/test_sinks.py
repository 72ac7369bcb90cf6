"""The metrics-log part of the tracker: which metrics go to the loggers, and a logger that fails."""

import logging

import pytest

from fairness_callback.training.sinks import HEADLINE_METRICS, MetricsLog, TensorBoardSink, make_sink

METRICS = {"jsdp/gap": 0.1, "ar/male": 3.0, "jsdp/male/female": 0.2, "ar/gap_ci_low": 0.0, "n/male": 10.0}


def test_one_gender_probe_logs_its_headline_in_order():
    logged = MetricsLog().select(METRICS)
    assert list(logged) == [f"fairness/{k}" for k in HEADLINE_METRICS if k in METRICS]
    assert "fairness/jsdp/male/female" not in logged and "fairness/n/male" not in logged


def test_several_probes_log_each_probes_headline():
    metrics = {"religion/jsdp/gap": 0.1, "religion/acc/christian": 0.5, "religion/jsdp/a/b": 0.2}
    assert MetricsLog(prefixed=True).select(metrics) == {
        "fairness/religion/jsdp/gap": 0.1,
        "fairness/religion/acc/christian": 0.5,
    }


def test_log_all_metrics():
    assert MetricsLog(log_all_metrics=True).select(METRICS) == {f"fairness/{k}": v for k, v in METRICS.items()}


def test_send_calls_the_sink_and_returns_a_failure_instead_of_raising(caplog):
    seen = []
    MetricsLog(lambda metrics, step: seen.append((metrics, step))).send(METRICS, 7)
    assert seen == [(MetricsLog().select(METRICS), 7)]

    def broken(metrics, step):
        raise ConnectionError("wandb is down")

    with caplog.at_level(logging.ERROR, logger="fairness_callback"):
        error = MetricsLog(broken).send(METRICS, 8)
    assert isinstance(error, ConnectionError) and "could not be logged; training goes on" in caplog.text
    assert MetricsLog(None).send(METRICS, 9) is None


def test_a_tensorboard_sink_gets_the_layout_with_its_first_metrics():
    class Writer:
        def __init__(self):
            self.layouts, self.scalars = [], []

        def add_scalar(self, key, value, step):
            self.scalars.append((key, step))

        def add_custom_scalars(self, layout):
            self.layouts.append(layout)

    writer = Writer()
    metrics_log = MetricsLog(writer)
    assert isinstance(metrics_log.sink, TensorBoardSink)
    metrics_log.show_layout({"fairness": {}})
    metrics_log.send(METRICS, 0)
    metrics_log.send(METRICS, 1)
    assert writer.layouts == [{"fairness": {}}] and ("fairness/jsdp/gap", 1) in writer.scalars


def test_an_unknown_logger_is_named():
    with pytest.raises(TypeError, match="got int"):
        make_sink(3)
