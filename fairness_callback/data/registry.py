"""Probe sets by name, like lm-evaluation-harness' task names: each data module registers its set once.

    from fairness_callback.data import probe_set, probe_set_names

    probe_set_names()                       # ('builtin', 'winobias', 'winogender', 'builtin-they', 'bbq')
    probe_set("builtin")                    # == ProbeSet.builtin()
    probe_set("bbq", directory="BBQ/data", categories=["Religion"])

A data module registers its set with :func:`register_probe_set`, as a decorator of the loader (a
function of the set's options that returns a :class:`~fairness_callback.data.sentence.ProbeSet`)::

    @register_probe_set("my-set", task="gender", needs_directory=True,
                        cli=CliOption("myset", gender_help="my sentences in DIR as the gender probe"))
    def my_probe_set(directory) -> ProbeSet:
        return ProbeSet(read_my_files(directory), name="my-set")

and :mod:`fairness_callback.data` imports the module. Everything else reads the registry: the
``ProbeSet.builtin()`` / ``from_winobias()`` / ... constructors call :func:`probe_set`;
:func:`fairness_callback.probe.suite.axis_probe_sets` gives the sets probed beside the gender probe;
the command line (``probe``, ``replay``, ``demo``) shows one option per set with a :class:`CliOption`,
in registration order (the order in which :mod:`fairness_callback.data` imports the modules).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from .sentence import ProbeSet

__all__ = [
    "axis_specs",
    "CliOption",
    "probe_set",
    "probe_set_names",
    "probe_set_spec",
    "probe_set_specs",
    "ProbeSetSpec",
    "register_probe_set",
    "TASK_KINDS",
    "TASKS",
    "UnknownProbeSetError",
    "unregister_probe_set",
]

#: The tasks a probe set goes with: ``"gender"`` (he / she sentences; Winogender's they sentences are
#: reported beside them), ``"they"`` (only singular-they sentences, whose answer is "not specified"),
#: ``"bbq"`` (BBQ items). The first two hold :class:`~fairness_callback.data.sentence.ProbeSentence`
#: (item kind ``"sentence"``), the last :class:`~fairness_callback.data.bbq.BBQItem` (kind ``"bbq"``).
TASK_KINDS: dict[str, str] = {"gender": "sentence", "they": "sentence", "bbq": "bbq"}
TASKS = tuple(TASK_KINDS)


class UnknownProbeSetError(LookupError, ValueError):
    """No probe set is registered under the name; the message lists the registered names."""


@dataclass(frozen=True)
class CliOption:
    """How the command line offers a registered set.

    ``flag``: the option without its dashes (``"winobias"``: ``--winobias``), a Python identifier. It
    is also the keyword of :func:`~fairness_callback.probe.suite.axis_probe_sets`, the
    :class:`~fairness_callback.demo.run.DemoConfig` field (when ``demo``) and the probe's name when the
    set is probed beside the gender probe. A set that needs a directory takes ``--flag DIR``; one that
    does not is a switch.

    ``gender_help``: the option's help where the set replaces the gender probe (``probe``, ``replay``;
    only for task ``"gender"``); None: it cannot. ``axis_help``: its help where the set is probed beside
    the gender probe (``probe`` and ``replay`` unless ``gender_help`` is given; ``demo`` when ``demo``).
    ``lists``: loader options given on the command line as comma-separated lists, each
    ``(option, metavar, help)``, shown as ``--<flag>-<option>`` (BBQ: ``--bbq-categories A,B``).
    ``demo``: the demo offers the set beside its gender probe (DemoConfig needs fields named
    ``flag`` and ``<flag>_<option>`` for it).
    """

    flag: str
    gender_help: str | None = None
    axis_help: str | None = None
    lists: tuple[tuple[str, str, str], ...] = ()
    demo: bool = False

    def __post_init__(self) -> None:
        names = [self.flag, *(f"{self.flag}_{option}" for option, _, _ in self.lists)]
        if not all(name.isidentifier() for name in names):
            raise ValueError(f"CLI option names must be Python identifiers, got {names}")
        if self.gender_help is None and self.axis_help is None:
            raise ValueError(f"--{self.flag}: give gender_help, axis_help or both")
        if self.demo and self.axis_help is None:
            raise ValueError(f"--{self.flag}: demo needs axis_help (the demo probes other sets beside its own gender probe)")

    @property
    def list_keys(self) -> tuple[str, ...]:
        """``<flag>_<option>`` of each list option: its argparse destination and keyword."""
        return tuple(f"{self.flag}_{option}" for option, _, _ in self.lists)


@dataclass(frozen=True)
class ProbeSetSpec:
    """A registered probe set: its name, its loader and what the loader needs.

    ``loader(**options)`` returns the :class:`ProbeSet`; ``task`` is one of :data:`TASKS`;
    ``needs_directory``: the loader's ``directory`` option (the data set's files, not shipped with the
    package) must be given. ``cli``: how the command line offers it (None: it does not). ``axes``: how
    the set is split into probes beside the gender probe, ``axes(**options) -> {probe name: ProbeSet}``
    (BBQ: one per category); None: one probe named by ``cli.flag``.
    """

    name: str
    loader: Callable[..., ProbeSet]
    task: str
    needs_directory: bool = False
    description: str = ""
    cli: CliOption | None = None
    axes: Callable[..., dict[str, ProbeSet]] | None = None

    @property
    def options(self) -> tuple[str, ...]:
        """The keyword options the loader takes (``directory`` first when it needs one)."""
        kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
        return tuple(p.name for p in inspect.signature(self.loader).parameters.values() if p.kind in kinds)

    def check_options(self, options: Mapping[str, Any]) -> None:
        """TypeError for an option the loader does not take, ValueError for a missing directory."""
        unknown = sorted(set(options) - set(self.options))
        if unknown:
            raise TypeError(f"probe set {self.name!r} takes the options {list(self.options)}, not {unknown}")
        if self.needs_directory and options.get("directory") is None:
            raise ValueError(f"probe set {self.name!r} needs directory= (the directory of its files)")

    def load(self, **options: Any) -> ProbeSet:
        """The set, loaded with ``options``; its items must be of the kind of its task."""
        self.check_options(options)
        loaded = self.loader(**options)
        if loaded.kind != TASK_KINDS[self.task]:
            raise TypeError(
                f"probe set {self.name!r} (task {self.task!r}) loaded {loaded.kind!r} items, expected {TASK_KINDS[self.task]!r}"
            )
        return loaded

    def as_axes(self, **options: Any) -> dict[str, ProbeSet]:
        """The set as probes beside the gender probe, by probe name (see ``axes``)."""
        if self.axes is not None:
            self.check_options(options)
            return self.axes(**options)
        if self.cli is None:
            raise ValueError(f"probe set {self.name!r} has no command-line option to name its probe")
        return {self.cli.flag: self.load(**options)}

    def options_from_cli(self, value: Any, lists: Mapping[str, Any]) -> dict[str, Any]:
        """The loader options of its command-line value ``value`` (the directory; True for a switch) and of
        the list options in ``lists`` (by ``<flag>_<option>``; None: not given)."""
        assert self.cli is not None
        options: dict[str, Any] = {"directory": value} if self.needs_directory else {}
        for (option, _, _), key in zip(self.cli.lists, self.cli.list_keys):
            if lists.get(key) is not None:
                options[option] = lists[key]
        return options


_REGISTRY: dict[str, ProbeSetSpec] = {}


def register_probe_set(
    name: str,
    loader: Callable[..., ProbeSet] | None = None,
    *,
    task: str,
    needs_directory: bool = False,
    description: str = "",
    cli: CliOption | None = None,
    axes: Callable[..., dict[str, ProbeSet]] | None = None,
):
    """Register the probe set ``name``: ``register_probe_set(name, loader, task=...)``, or as a decorator
    of the loader, ``@register_probe_set(name, task=...)`` (which returns the loader unchanged).

    ValueError for a name that is already registered, an unknown ``task``, a loader without the
    ``directory`` option it ``needs_directory``, or a command-line option that another set has.
    """

    def register(function: Callable[..., ProbeSet]) -> Callable[..., ProbeSet]:
        if not name or not isinstance(name, str):
            raise ValueError(f"a probe set's name must be a non-empty string, got {name!r}")
        if name in _REGISTRY:
            known = _REGISTRY[name].loader
            raise ValueError(f"probe set {name!r} is already registered (by {known.__module__}.{known.__qualname__})")
        if task not in TASK_KINDS:
            raise ValueError(f"probe set {name!r}: task must be one of {TASKS}, got {task!r}")
        spec = ProbeSetSpec(name, function, task, needs_directory, description, cli, axes)
        if needs_directory and "directory" not in spec.options:
            raise ValueError(f"probe set {name!r} needs a directory but its loader takes no 'directory' option")
        if cli is not None:
            if cli.gender_help is not None and task != "gender":
                raise ValueError(f"probe set {name!r}: only a 'gender' set can replace the gender probe (gender_help)")
            missing = [option for option, _, _ in cli.lists if option not in spec.options]
            if missing:
                raise ValueError(f"probe set {name!r}: its loader takes no option(s) {missing} of cli.lists")
            taken = {
                key: other.name for other in _REGISTRY.values() if other.cli for key in (other.cli.flag, *other.cli.list_keys)
            }
            clash = [key for key in (cli.flag, *cli.list_keys) if key in taken]
            if clash:
                raise ValueError(f"probe set {name!r}: command-line option(s) {clash} belong to {taken[clash[0]]!r}")
        _REGISTRY[name] = spec
        return function

    return register if loader is None else register(loader)


def unregister_probe_set(name: str) -> ProbeSetSpec:
    """Remove a registered set (for tests that register their own); returns its spec."""
    return _REGISTRY.pop(probe_set_spec(name).name)


def probe_set_names() -> tuple[str, ...]:
    """The registered sets' names, in registration order."""
    return tuple(_REGISTRY)


def probe_set_specs() -> tuple[ProbeSetSpec, ...]:
    """The registered sets, in registration order."""
    return tuple(_REGISTRY.values())


def probe_set_spec(name: str) -> ProbeSetSpec:
    """The registered set ``name``; :class:`UnknownProbeSetError` listing the registered names."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UnknownProbeSetError(f"unknown probe set {name!r}; registered: {', '.join(_REGISTRY) or 'none'}") from None


def probe_set(name: str, **options: Any) -> ProbeSet:
    """The registered probe set ``name``, loaded with ``options`` (e.g. ``directory=``).

    :class:`UnknownProbeSetError` (a LookupError and ValueError) for an unknown name, TypeError for an
    option the set does not take, ValueError when it needs a directory and none is given; the
    loader's own errors (OSError, ValueError naming the file and line) as they are.
    """
    return probe_set_spec(name).load(**options)


def axis_specs(demo: bool = False) -> tuple[ProbeSetSpec, ...]:
    """The sets that can be probed beside the gender probe (a CLI option with ``axis_help``; with
    ``demo``, only those the demo offers), in registration order."""
    return tuple(
        spec
        for spec in _REGISTRY.values()
        if spec.cli is not None and spec.cli.axis_help is not None and (spec.cli.demo or not demo)
    )
