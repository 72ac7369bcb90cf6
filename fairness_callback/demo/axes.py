"""The registered probe sets the demo offers beside its gender probe, and its fields that choose them.

The demo's own choice: the data registry does not know about the demo, nor the command line's table
(:mod:`fairness_callback.cli_options`) which of its sets the demo takes. ``fairness-callback demo``
shows the command-line option of each set named here (its ``axis_help``, and only the list options
named here); :class:`~fairness_callback.demo.run.DemoConfig` has a field for each (see
:func:`demo_axis_fields`), which :func:`~fairness_callback.probe.suite.axis_probe_sets` takes as they are.
"""

from __future__ import annotations

from ..data.registry import probe_set_spec

__all__ = ["DEMO_AXES", "demo_axis_fields"]

#: The sets the demo offers beside its gender probe, by registered name, each with the loader options
#: it takes as comma-separated lists (BBQ's ``categories``: ``--bbq-categories``).
DEMO_AXES: dict[str, tuple[str, ...]] = {"winogender": (), "builtin-they": (), "bbq": ("categories",)}


def demo_axis_fields() -> dict[str, tuple[str, ...]]:
    """The :class:`~fairness_callback.demo.run.DemoConfig` fields of each set of :data:`DEMO_AXES`, by set
    name: its probe name (the set's directory, or True for a set without one: ``winogender``, ``they``,
    ``bbq``), then ``<probe name>_<option>`` of each of its list options (``bbq_categories``); the
    keywords of :func:`~fairness_callback.probe.suite.axis_probe_sets`."""
    fields = {}
    for name, options in DEMO_AXES.items():
        probe = probe_set_spec(name).probe_name
        fields[name] = (probe, *(f"{probe}_{option}" for option in options))
    return fields
