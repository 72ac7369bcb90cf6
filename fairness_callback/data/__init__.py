"""Probe data: WinoBias (files and HF rows), Winogender, BBQ, and the built-in gender and they sets.

Each set is registered by name (:mod:`.registry`): ``probe_set("winobias", directory=...)``,
``probe_set_names()``. Importing a module registers its set(s); the modules are imported here in the
order the command line shows their options (registration order).
"""

from .registry import (
    TASK_KINDS,
    TASKS,
    ProbeSetSpec,
    UnknownProbeSetError,
    probe_set,
    probe_set_names,
    probe_set_spec,
    probe_set_specs,
    register_probe_set,
    register_task,
    task_names,
    unregister_probe_set,
    unregister_task,
)
from .sentence import (
    FEMALE_PRONOUNS,
    GENDERS,
    ITEM_KINDS,
    MALE_PRONOUNS,
    NEUTRAL_PRONOUNS,
    WINOBIAS_ENV,
    BBQFields,
    ItemKind,
    ProbeItem,
    ProbeSentence,
    ProbeSet,
    item_count_labels,
    item_id,
    item_kind,
    pronoun_gender,
)

# isort: off
# Registration order (= the order of the command line's options): the gender sets, then the others.
from .builtin import load_builtin  # registers "builtin"
from .winobias import WinoBiasFormatError  # registers "winobias"
from .winogender import WinogenderLoad, load_winogender  # registers "winogender"
from .builtin_they import load_builtin_they  # registers "builtin-they"
from .bbq import BBQItem, BBQLoad, BBQUnmatched, load_bbq  # registers "bbq"

# isort: on
from .occupations import FEMALE_STEREOTYPED, MALE_STEREOTYPED, OCCUPATIONS

__all__ = [
    "BBQFields",
    "BBQItem",
    "BBQLoad",
    "BBQUnmatched",
    "FEMALE_PRONOUNS",
    "FEMALE_STEREOTYPED",
    "GENDERS",
    "ITEM_KINDS",
    "ItemKind",
    "MALE_PRONOUNS",
    "MALE_STEREOTYPED",
    "NEUTRAL_PRONOUNS",
    "OCCUPATIONS",
    "ProbeItem",
    "ProbeSetSpec",
    "TASK_KINDS",
    "TASKS",
    "task_names",
    "UnknownProbeSetError",
    "WINOBIAS_ENV",
    "ProbeSentence",
    "ProbeSet",
    "WinoBiasFormatError",
    "WinogenderLoad",
    "load_bbq",
    "load_builtin",
    "load_builtin_they",
    "item_count_labels",
    "item_id",
    "item_kind",
    "load_winogender",
    "probe_set",
    "probe_set_names",
    "probe_set_spec",
    "probe_set_specs",
    "pronoun_gender",
    "register_probe_set",
    "register_task",
    "unregister_probe_set",
    "unregister_task",
]


def __getattr__(name: str):
    # The command line's option type left the data layer (issue #28): say where it went, also to
    # `from fairness_callback.data import CliOption` (an AttributeError would lose the message there).
    if name == "CliOption":
        raise ImportError(
            "fairness_callback.data.CliOption moved to fairness_callback.cli_options.CliOption; give a set its "
            "command-line option with fairness_callback.cli_options.register_cli_option(name, CliOption(...))",
            name=name,
        )
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
