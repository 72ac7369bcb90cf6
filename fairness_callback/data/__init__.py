"""Probe data: WinoBias (files and HF rows), Winogender, BBQ, and the built-in gender and they sets.

Each set is registered by name (:mod:`.registry`): ``probe_set("winobias", directory=...)``,
``probe_set_names()``. Importing a module registers its set(s); the modules are imported here in the
order the command line shows their options (registration order).
"""

from .registry import (
    TASKS,
    CliOption,
    ProbeSetSpec,
    UnknownProbeSetError,
    probe_set,
    probe_set_names,
    probe_set_spec,
    probe_set_specs,
    register_probe_set,
    unregister_probe_set,
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
    "CliOption",
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
    "TASKS",
    "UnknownProbeSetError",
    "WINOBIAS_ENV",
    "ProbeSentence",
    "ProbeSet",
    "WinoBiasFormatError",
    "WinogenderLoad",
    "load_bbq",
    "load_builtin",
    "load_builtin_they",
    "item_id",
    "item_kind",
    "load_winogender",
    "probe_set",
    "probe_set_names",
    "probe_set_spec",
    "probe_set_specs",
    "pronoun_gender",
    "register_probe_set",
    "unregister_probe_set",
]
