"""The sets the demo offers beside its gender probe: its own list, with a DemoConfig field for each."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

from fairness_callback.demo.axes import DEMO_AXES, demo_axis_fields
from fairness_callback.demo.run import DemoConfig


def test_every_offered_set_has_its_demo_config_fields():
    assert list(DEMO_AXES) == ["winogender", "builtin-they", "bbq"]
    assert demo_axis_fields() == {"winogender": ("winogender",), "builtin-they": ("they",), "bbq": ("bbq", "bbq_categories")}
    names = {field.name for field in fields(DemoConfig)}
    assert {name for each in demo_axis_fields().values() for name in each} <= names


def test_the_config_gives_axis_probe_sets_its_keywords():
    config = DemoConfig(they=True, bbq=Path("BBQ"), bbq_categories=["Age"])
    assert config.axis_options() == {"winogender": None, "they": True, "bbq": Path("BBQ"), "bbq_categories": ["Age"]}
    assert config.several_probes and not DemoConfig().several_probes
