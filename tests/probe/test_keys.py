"""The metric key grammar: every key a probe produces parses and is written back the same."""

import pytest

from fairness_callback.probe.keys import METRIC_KINDS, MetricKey
from fairness_callback.probe.suite import ProbeSuite
from support import make_tokenizer, small_probe


@pytest.mark.parametrize(
    ("key", "parts"),
    [
        ("jsdp/gap", ("jsdp", "gap", None, ())),
        ("jsdp/male/female", ("jsdp", "male", "female", ())),
        ("ar/gap/se", ("ar", "gap", "se", ())),
        ("mwu_p/jsdp", ("mwu_p", "jsdp", None, ())),
        ("pro/acc/male", ("acc", "male", None, ("pro",))),
        ("religion/jsdp/gap", ("jsdp", "gap", None, ("religion",))),
        ("gender/anti/ar/abs_gap", ("ar", "abs_gap", None, ("gender", "anti"))),
    ],
)
def test_parse_and_write_back(key, parts):
    parsed = MetricKey.parse(key)
    assert (parsed.kind, parsed.group, parsed.part, parsed.scope) == parts
    assert str(parsed) == key


def test_every_key_of_a_probe_and_of_a_suite_round_trips():
    probe = small_probe(make_tokenizer())
    keys = probe.metric_keys
    assert keys and all(str(MetricKey.parse(key)) == key for key in keys)
    assert all(str(MetricKey.parse(f"gender/{key}").without_scope()) == key for key in keys)


@pytest.mark.parametrize(
    "key", ["step", "val_loss", "jsdp", "probe_seconds", "jsdp/male/female/x", "religion//gap", "stopping/best"]
)
def test_what_is_not_a_metric_key(key):
    assert MetricKey.try_parse(key) is None
    with pytest.raises(ValueError, match="not a probe metric key"):
        MetricKey.parse(key)


def test_gaps_siblings_and_prefixes():
    monitor = MetricKey.parse("religion/ar/gap")
    assert monitor.is_gap and not MetricKey.parse("jsdp/lean").is_gap and not MetricKey.parse("ar/gap/se").is_gap
    assert str(monitor.sibling("mwu_p", monitor.kind)) == "religion/mwu_p/ar"
    assert str(monitor.sibling("acc", "male")) == "religion/acc/male"
    assert monitor.prefix == "religion/" and MetricKey.parse("jsdp/gap").prefix == ""


def test_a_probe_may_not_be_named_after_a_kind():
    probe = small_probe(make_tokenizer())
    for kind in sorted(METRIC_KINDS):
        with pytest.raises(ValueError, match="metric kind"):
            ProbeSuite({kind: probe})
