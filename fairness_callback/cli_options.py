"""The command line's options for registered probe sets: one table, by set name.

The data registry (:mod:`fairness_callback.data.registry`) knows the sets; this module knows which of
them the command line (``probe``, ``replay``, ``demo``) offers, under which flag and with which help,
and is read only by the command line. The package's own sets' options are :data:`BUILTIN_CLI_OPTIONS`;
a set of one's own gets one with :func:`register_cli_option` once it is registered::

    from fairness_callback.cli import main
    from fairness_callback.cli_options import CliOption, register_cli_option
    from fairness_callback.data import ProbeSet, register_probe_set

    @register_probe_set("my-set", task="gender", needs_directory=True, probe_name="myset")
    def my_probe_set(directory) -> ProbeSet: ...

    register_cli_option("my-set", CliOption("myset", axis_help="also probe my sentences in DIR"))
    main()  # fairness-callback probe --myset DIR ...

The options are shown in the registry's order (the order in which :mod:`fairness_callback.data`
imports its modules, then the sets registered after). Which sets the demo offers beside its gender
probe is the demo's own list (:data:`fairness_callback.demo.axes.DEMO_AXES`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .data.registry import ProbeSetSpec, deprecated_cli_options, probe_set_spec, probe_set_specs

__all__ = [
    "BUILTIN_CLI_OPTIONS",
    "CliOption",
    "cli_option",
    "cli_options",
    "options_from_cli",
    "register_cli_option",
    "unregister_cli_option",
]


@dataclass(frozen=True)
class CliOption:
    """How the command line offers a registered set.

    ``flag``: the option without its dashes (``"winobias"``: ``--winobias``), a Python identifier (its
    argparse destination). A set that needs a directory takes ``--flag DIR``; one that does not is a
    switch. The set's probe is named by its ``probe_name`` (data registry), not by the flag.

    ``gender_help``: the option's help where the set replaces the gender probe (``probe``, ``replay``;
    only for task ``"gender"``); None: it cannot. ``axis_help``: its help where the set is probed beside
    the gender probe (``probe`` and ``replay`` unless ``gender_help`` is given; ``demo`` for the sets
    the demo offers). ``lists``: loader options given on the command line as comma-separated lists,
    each ``(option, metavar, help)``, shown as ``--<flag>-<option>`` (BBQ: ``--bbq-categories A,B``).
    """

    flag: str
    gender_help: str | None = None
    axis_help: str | None = None
    lists: tuple[tuple[str, str, str], ...] = ()

    def __post_init__(self) -> None:
        names = [self.flag, *(f"{self.flag}_{option}" for option, _, _ in self.lists)]
        if not all(name.isidentifier() for name in names):
            raise ValueError(f"CLI option names must be Python identifiers, got {names}")
        if self.gender_help is None and self.axis_help is None:
            raise ValueError(f"--{self.flag}: give gender_help, axis_help or both")

    @property
    def list_keys(self) -> tuple[str, ...]:
        """``<flag>_<option>`` of each list option: its argparse destination."""
        return tuple(f"{self.flag}_{option}" for option, _, _ in self.lists)


#: The package's own sets' options, by set name (builtin has none: it is the default gender probe).
BUILTIN_CLI_OPTIONS: dict[str, CliOption] = {
    "winobias": CliOption(
        "winobias",
        gender_help="official WinoBias files instead of the built-in probe set (default: $FAIRNESS_WINOBIAS_DIR if set)",
    ),
    "winogender": CliOption(
        "winogender",
        gender_help="Winogender's all_sentences.tsv in DIR as the gender probe "
        "(he / she like WinoBias; 'they' sentences reported as they/...)",
        axis_help="also probe Winogender's all_sentences.tsv in DIR (probe 'winogender', its 'they' "
        "sentences as winogender/they/...)",
    ),
    "builtin-they": CliOption("they", axis_help="also probe the built-in singular-they set (probe 'they')"),
    "bbq": CliOption(
        "bbq",
        axis_help="also probe BBQ's social axes from the official files in DIR "
        "(one probe per category, named by it in lower case)",
        lists=(("categories", "A,B", "BBQ categories (file stems, e.g. Religion,Age; default all)"),),
    ),
}

#: Every set's option by set name, with the spec it was registered for (an entry whose set was since
#: unregistered, or registered anew, is stale and ignored).
_TABLE: dict[str, tuple[ProbeSetSpec, CliOption]] = {}


def _current(name: str, table: Mapping[str, tuple[ProbeSetSpec, CliOption]]) -> CliOption | None:
    entry = table.get(name)
    specs = {spec.name: spec for spec in probe_set_specs()}
    return entry[1] if entry is not None and specs.get(name) is entry[0] else None


def _check(spec: ProbeSetSpec, option: CliOption, others: Mapping[str, CliOption]) -> None:
    """ValueError unless ``option`` fits ``spec`` and no other set's option (``others``, by set name) has its names."""
    if option.gender_help is not None and spec.task != "gender":
        raise ValueError(f"probe set {spec.name!r}: only a 'gender' set can replace the gender probe (gender_help)")
    missing = [name for name, _, _ in option.lists if name not in spec.options]
    if missing:
        raise ValueError(f"probe set {spec.name!r}: its loader takes no option(s) {missing} of the CLI option's lists")
    taken = {key: name for name, other in others.items() if name != spec.name for key in (other.flag, *other.list_keys)}
    clash = [key for key in (option.flag, *option.list_keys) if key in taken]
    if clash:
        raise ValueError(f"probe set {spec.name!r}: command-line option(s) {clash} belong to {taken[clash[0]]!r}")


def cli_options() -> list[tuple[ProbeSetSpec, CliOption]]:
    """Every registered set that has a command-line option, with it, in registration order: those of
    :func:`register_cli_option`, then of the deprecated ``register_probe_set(..., cli=...)``
    (checked here: ValueError or TypeError as :func:`register_cli_option` raises them)."""
    options: dict[str, CliOption] = {}
    for spec in probe_set_specs():
        option = _current(spec.name, _TABLE)
        if option is not None:
            options[spec.name] = option
    for name, given in deprecated_cli_options().items():
        if name not in options:
            spec = probe_set_spec(name)
            if not isinstance(given, CliOption):
                raise TypeError(f"probe set {name!r}: cli= takes a CliOption, got {type(given).__name__}")
            _check(spec, given, options)
            options[name] = given
    return [(spec, options[spec.name]) for spec in probe_set_specs() if spec.name in options]


def cli_option(name: str) -> CliOption | None:
    """The command-line option of the registered set ``name`` (None: it has none);
    :class:`~fairness_callback.data.registry.UnknownProbeSetError` for a set that is not registered."""
    return dict((spec.name, option) for spec, option in cli_options()).get(probe_set_spec(name).name)


def register_cli_option(name: str, option: CliOption) -> CliOption:
    """Give the registered probe set ``name`` a command-line option (``fairness-callback probe
    --<flag>``, ``replay``; ``demo`` for the sets the demo offers). Returns ``option``.

    :class:`~fairness_callback.data.registry.UnknownProbeSetError` for a set that is not registered
    (register it first); ValueError for a set that has an option already, a ``gender_help`` on a set
    whose task is not ``"gender"``, a list option its loader does not take, or a flag or list option
    that another set's option has.
    """
    spec = probe_set_spec(name)
    if not isinstance(option, CliOption):
        raise TypeError(f"probe set {name!r}: a command-line option is a CliOption, got {type(option).__name__}")
    others = {other.name: option for other, option in cli_options()}
    if spec.name in others:
        raise ValueError(f"probe set {name!r} has a command-line option already (--{others[spec.name].flag})")
    _check(spec, option, others)
    _TABLE[spec.name] = (spec, option)
    return option


def unregister_cli_option(name: str) -> CliOption | None:
    """Take the command-line option of the set ``name`` off the table (for tests); returns it (None: it had none)."""
    entry = _TABLE.pop(name, None)
    return entry[1] if entry is not None else None


def options_from_cli(spec: ProbeSetSpec, option: CliOption, value: Any, lists: Mapping[str, Any]) -> dict[str, Any]:
    """The loader options of the set's command-line value ``value`` (the directory; True for a switch)
    and of its list options in ``lists`` (by ``<flag>_<option>``; None: not given)."""
    options: dict[str, Any] = {"directory": value} if spec.needs_directory else {}
    for (name, _, _), key in zip(option.lists, option.list_keys):
        if lists.get(key) is not None:
            options[name] = lists[key]
    return options


for _name, _option in BUILTIN_CLI_OPTIONS.items():
    register_cli_option(_name, _option)
