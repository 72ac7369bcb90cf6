"""Probe sets by name, like lm-evaluation-harness' task names: each data module registers its set once.

    from fairness_callback.data import probe_set, probe_set_names

    probe_set_names()                       # ('builtin', 'winobias', 'winogender', 'builtin-they', 'bbq')
    probe_set("builtin")                    # == ProbeSet.builtin()
    probe_set("bbq", directory="BBQ/data", categories=["Religion"])

A data module registers its set with :func:`register_probe_set`, as a decorator of the loader (a
function of the set's options that returns a :class:`~fairness_callback.data.sentence.ProbeSet`)::

    @register_probe_set("my-set", task="gender", needs_directory=True, probe_name="myset")
    def my_probe_set(directory) -> ProbeSet:
        return ProbeSet(read_my_files(directory), name="my-set")

and :mod:`fairness_callback.data` imports the module. The registry holds what is about the data:
the name, the loader and its options, the task (and so the kind of its items), the name of its
probe beside the gender probe. Everything else reads it, never the reverse: the
``ProbeSet.builtin()`` / ``from_winobias()`` / ... constructors call :func:`probe_set`;
:func:`fairness_callback.probe.suite.axis_probe_sets` gives sets by their probe names; the command
line's options are a table of its own (:mod:`fairness_callback.cli_options`: ``register_cli_option``
gives a set an option) and the demo names the sets it offers (:mod:`fairness_callback.demo.axes`).

A set of a new task (a new kind of item) declares the task first, ``register_task("pairs",
item_kind="pair")``; the probe then needs the kind's prompts
(:func:`fairness_callback.probe.item_kinds.register_item_kind`).
"""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from .sentence import ProbeSet

__all__ = [
    "deprecated_cli_options",
    "probe_set",
    "probe_set_names",
    "probe_set_spec",
    "probe_set_specs",
    "ProbeSetSpec",
    "register_probe_set",
    "register_task",
    "TASK_KINDS",
    "task_names",
    "TASKS",
    "UnknownProbeSetError",
    "unregister_probe_set",
    "unregister_task",
]

#: The tasks a probe set goes with, and the kind of item each holds. The package's own:
#: ``"gender"`` (he / she sentences; Winogender's they sentences are reported beside them),
#: ``"they"`` (only singular-they sentences, whose answer is "not specified"), both of
#: :class:`~fairness_callback.data.sentence.ProbeSentence` (item kind ``"sentence"``), and ``"bbq"``
#: (:class:`~fairness_callback.data.bbq.BBQItem`, kind ``"bbq"``). :func:`register_task` adds one.
TASK_KINDS: dict[str, str] = {"gender": "sentence", "they": "sentence", "bbq": "bbq"}
#: The package's own tasks (:func:`task_names`: every registered one).
TASKS: tuple[str, ...] = tuple(TASK_KINDS)


class UnknownProbeSetError(LookupError, ValueError):
    """No probe set is registered under the name; the message lists the registered names."""


def register_task(name: str, item_kind: str) -> None:
    """Declare the task ``name``, whose sets hold items of kind ``item_kind`` (their ``kind``), so that
    :func:`register_probe_set` takes it. Registering a task again with the same kind does nothing;
    ValueError for another kind, or a name or kind that is not a non-empty string. The probe prompts
    the items by their kind (:mod:`fairness_callback.probe.item_kinds`), which it must know too."""
    for what, value in (("name", name), ("item_kind", item_kind)):
        if not value or not isinstance(value, str):
            raise ValueError(f"a task's {what} must be a non-empty string, got {value!r}")
    known = TASK_KINDS.get(name)
    if known is not None and known != item_kind:
        raise ValueError(f"task {name!r} is already registered, with item kind {known!r}")
    TASK_KINDS[name] = item_kind


def unregister_task(name: str) -> str:
    """Remove a task :func:`register_task` declared (for tests that declare their own); returns its item
    kind. ValueError for one of the package's own (:data:`TASKS`), one that a registered set goes with,
    or an unknown name."""
    if name in TASKS:
        raise ValueError(f"task {name!r} is one of the package's own")
    if name not in TASK_KINDS:
        raise ValueError(f"unknown task {name!r}; registered: {', '.join(TASK_KINDS)}")
    users = [spec.name for spec in _REGISTRY.values() if spec.task == name]
    if users:
        raise ValueError(f"task {name!r} is the task of the registered set(s) {users}")
    return TASK_KINDS.pop(name)


def task_names() -> tuple[str, ...]:
    """Every registered task, the package's own first."""
    return tuple(TASK_KINDS)


@dataclass(frozen=True)
class ProbeSetSpec:
    """A registered probe set: its name, its loader and what the loader needs.

    ``loader(**options)`` returns the :class:`ProbeSet`; ``task`` is a registered task (:data:`TASK_KINDS`);
    ``needs_directory``: the loader's ``directory`` option (the data set's files, not shipped with the
    package) must be given. ``probe_name``: the name of the set's probe when it is probed beside the
    gender probe (default: the set's name; the built-in singular-they set's is ``"they"``), also its
    keyword in :func:`~fairness_callback.probe.suite.axis_probe_sets`. ``axes``: how the set is split
    into probes beside the gender probe, ``axes(**options) -> {probe name: ProbeSet}`` (BBQ: one per
    category); None: one probe named ``probe_name``.
    """

    name: str
    loader: Callable[..., ProbeSet]
    task: str
    needs_directory: bool = False
    description: str = ""
    axes: Callable[..., dict[str, ProbeSet]] | None = None
    probe_name: str = ""

    def __post_init__(self) -> None:
        if not self.probe_name:
            object.__setattr__(self, "probe_name", self.name)

    @property
    def options(self) -> tuple[str, ...]:
        """The keyword options the loader takes (``directory`` first when it needs one)."""
        kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
        return tuple(p.name for p in inspect.signature(self.loader).parameters.values() if p.kind in kinds)

    @property
    def item_kind(self) -> str:
        """The kind of the set's items: its task's (:data:`TASK_KINDS`)."""
        return TASK_KINDS[self.task]

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
        if loaded.kind != self.item_kind:
            raise TypeError(
                f"probe set {self.name!r} (task {self.task!r}) loaded {loaded.kind!r} items, expected {self.item_kind!r}"
            )
        return loaded

    def as_axes(self, **options: Any) -> dict[str, ProbeSet]:
        """The set as probes beside the gender probe, by probe name (see ``axes`` and ``probe_name``)."""
        if self.axes is not None:
            self.check_options(options)
            return self.axes(**options)
        return {self.probe_name: self.load(**options)}


_REGISTRY: dict[str, ProbeSetSpec] = {}
#: Command-line options given the deprecated way, ``register_probe_set(..., cli=CliOption(...))``, by
#: set name: held here as they are, for the command line to read (:func:`deprecated_cli_options`).
_DEPRECATED_CLI: dict[str, object] = {}


def register_probe_set(
    name: str,
    loader: Callable[..., ProbeSet] | None = None,
    *,
    task: str,
    needs_directory: bool = False,
    description: str = "",
    axes: Callable[..., dict[str, ProbeSet]] | None = None,
    probe_name: str | None = None,
    cli: object | None = None,
):
    """Register the probe set ``name``: ``register_probe_set(name, loader, task=...)``, or as a decorator
    of the loader, ``@register_probe_set(name, task=...)`` (which returns the loader unchanged).

    ValueError for a name that is already registered, an unknown ``task`` (:func:`register_task`
    declares one), a loader without the ``directory`` option it ``needs_directory``, or a
    ``probe_name`` (default ``name``) that another set's probe has or that contains ``/``.

    ``cli`` is deprecated: a set's command-line option belongs to the command line,
    ``fairness_callback.cli_options.register_cli_option(name, CliOption(...))``. Given here, it warns
    (DeprecationWarning), names the set's probe by its flag as it used to (unless ``probe_name`` is
    given), and is handed on as it is to the command line, which checks it when it builds its options.
    """
    if cli is not None:
        warnings.warn(
            "register_probe_set(cli=...) is deprecated: a command-line option belongs to the command line; "
            "call fairness_callback.cli_options.register_cli_option(name, CliOption(...)) after registering the set",
            DeprecationWarning,
            stacklevel=2,
        )
        flag = getattr(cli, "flag", None)
        probe_name = probe_name or (flag if isinstance(flag, str) else None)

    def register(function: Callable[..., ProbeSet]) -> Callable[..., ProbeSet]:
        if not name or not isinstance(name, str):
            raise ValueError(f"a probe set's name must be a non-empty string, got {name!r}")
        if name in _REGISTRY:
            known = _REGISTRY[name].loader
            raise ValueError(f"probe set {name!r} is already registered (by {known.__module__}.{known.__qualname__})")
        if task not in TASK_KINDS:
            raise ValueError(
                f"probe set {name!r}: task must be one of {task_names()}, got {task!r} (register_task declares a new one)"
            )
        spec = ProbeSetSpec(name, function, task, needs_directory, description, axes, probe_name or name)
        if needs_directory and "directory" not in spec.options:
            raise ValueError(f"probe set {name!r} needs a directory but its loader takes no 'directory' option")
        if "/" in spec.probe_name:
            raise ValueError(f"probe set {name!r}: its probe name may not contain '/', got {spec.probe_name!r}")
        taken = {other.probe_name: other.name for other in _REGISTRY.values()}
        if spec.probe_name in taken:
            raise ValueError(f"probe set {name!r}: probe name {spec.probe_name!r} belongs to {taken[spec.probe_name]!r}")
        _REGISTRY[name] = spec
        if cli is not None:
            _DEPRECATED_CLI[name] = cli
        return function

    return register if loader is None else register(loader)


def unregister_probe_set(name: str) -> ProbeSetSpec:
    """Remove a registered set (for tests that register their own); returns its spec."""
    spec = _REGISTRY.pop(probe_set_spec(name).name)
    _DEPRECATED_CLI.pop(spec.name, None)
    return spec


def deprecated_cli_options() -> dict[str, object]:
    """The command-line options given to :func:`register_probe_set` the deprecated way (``cli=``), by
    set name, as they were given: :mod:`fairness_callback.cli_options` reads and checks them."""
    return dict(_DEPRECATED_CLI)


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
