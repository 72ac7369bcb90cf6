"""Item kinds: how the probe turns one kind of probe item into prompts, by the items' ``kind``.

:class:`~fairness_callback.probe.fairness_probe.FairnessProbe` looks the kind of its set's items up
here (:func:`kind_of_items`) and lets it build the prompts; it has no branch of its own per kind. A
kind gives its name (the items' ``kind``), its :class:`~fairness_callback.probe.tasks.ProbeTask`,
its default template, how many prompts an item gives per option-order seed, whether it takes
``options``, and :meth:`ProbeItemKind.build_prompts`. The package's own: :class:`SentenceKind`
(``"sentence"``: the gender task's sentences, two prompts per seed) and :class:`BBQKind` (``"bbq"``:
BBQ items, one prompt per seed, their answers lettered).

A new kind of item::

    PAIRS = ProbeTask(name="pairs", groups=("left", "right"), gap=("left", "right"))

    @register_item_kind
    class PairKind(ProbeItemKind):
        name = "pair"                  # the items' kind
        task = PAIRS
        default_template = "{text} Answer:"

        def build_prompts(self, items, template, options, seeds):
            return None, [Prompt(...) for ...]   # one Prompt per item and seed, items in order

and, for a registered probe set of such items, its task in the data registry
(``fairness_callback.data.register_task("pairs", item_kind="pair")``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, TypeVar, cast

from ..data.sentence import ProbeSentence, item_kind
from .prompts import (
    DEFAULT_BBQ_TEMPLATE,
    DEFAULT_OPTIONS,
    DEFAULT_TEMPLATE,
    Prompt,
    PromptConfig,
    build_bbq_prompts,
    build_prompts,
)
from .tasks import BBQ_TASK, GENDER_TASK, ProbeTask

__all__ = [
    "BBQKind",
    "item_kind_for",
    "item_kind_names",
    "kind_of_items",
    "ProbeItemKind",
    "register_item_kind",
    "SentenceKind",
    "UnknownItemKindError",
    "unregister_item_kind",
]


class UnknownItemKindError(LookupError, ValueError):
    """No item kind is registered under the name; the message lists the registered ones."""


class ProbeItemKind(ABC):
    """How items of one kind become the probe's prompts. Subclass it, set the class attributes and
    write :meth:`build_prompts`; register it with :func:`register_item_kind`.

    Attributes:
        name: the kind, as the items give it (their ``kind``; see
            :func:`fairness_callback.data.sentence.item_kind`).
        task: the task the prompts are scored on (their ``group`` is one of its groups).
        default_template: the template when the probe is given none.
        takes_options: whether ``FairnessProbe(options=...)`` means something for these items; if
            not, :meth:`check_options` refuses them, saying ``without_options`` (why) when given.
    """

    name: ClassVar[str]
    task: ClassVar[ProbeTask]
    default_template: ClassVar[str]
    takes_options: ClassVar[bool] = False
    without_options: ClassVar[str] = ""

    def prompts_per_item(self, seeds: Sequence[int]) -> int:
        """The prompts one item gives for ``seeds`` (default: one per seed); ``max_prompts`` chooses whole items by it."""
        return len(seeds)

    def check_options(self, options: Mapping[str, str] | None) -> None:
        """ValueError for ``options`` given to a kind that takes none."""
        if options is not None and not self.takes_options:
            raise ValueError(f"options: {self.without_options or f'a probe of {self.name!r} items takes none'}")

    @abstractmethod
    def build_prompts(
        self, items: Sequence[Any], template: str, options: Mapping[str, str] | None, seeds: Sequence[int]
    ) -> tuple[PromptConfig | None, list[Prompt]]:
        """The prompts of ``items`` (in item order; an item's prompts adjacent, ``sentence_index`` its
        index in ``items``), for the option-order ``seeds``, with ``template`` (the probe's, else
        :attr:`default_template`) and ``options`` (None: the kind's own; :meth:`check_options` has
        refused them for a kind that takes none); and the :class:`PromptConfig` the probe's info
        reports (None: none)."""


class SentenceKind(ProbeItemKind):
    """Gender sentences (:class:`~fairness_callback.data.sentence.ProbeSentence`): two prompts per
    sentence and seed (the referent, the other occupation), the option texts of ``options``
    (:func:`~fairness_callback.probe.prompts.build_prompts`)."""

    name = "sentence"
    task = GENDER_TASK
    default_template = DEFAULT_TEMPLATE
    takes_options = True

    def prompts_per_item(self, seeds: Sequence[int]) -> int:
        return 2 * len(seeds)

    def build_prompts(
        self, items: Sequence[Any], template: str, options: Mapping[str, str] | None, seeds: Sequence[int]
    ) -> tuple[PromptConfig | None, list[Prompt]]:
        config = PromptConfig(template=template, options=options or dict(DEFAULT_OPTIONS), seeds=tuple(seeds))
        return config, build_prompts(cast("Sequence[ProbeSentence]", items), config)


class BBQKind(ProbeItemKind):
    """BBQ items (:class:`~fairness_callback.data.bbq.BBQItem`, or BBQ-shaped): one prompt per item and
    seed, each item's own answers lettered in a shuffled order, the letters scored
    (:func:`~fairness_callback.probe.prompts.build_bbq_prompts`)."""

    name = "bbq"
    task = BBQ_TASK
    default_template = DEFAULT_BBQ_TEMPLATE
    without_options = "a BBQ probe shows each item's own answers and scores their letters"

    def build_prompts(
        self, items: Sequence[Any], template: str, options: Mapping[str, str] | None, seeds: Sequence[int]
    ) -> tuple[PromptConfig | None, list[Prompt]]:
        return None, build_bbq_prompts(items, template, seeds)


_KINDS: dict[str, ProbeItemKind] = {}

K = TypeVar("K", bound="ProbeItemKind | type[ProbeItemKind]")


def register_item_kind(kind: K) -> K:
    """Register an item kind (a :class:`ProbeItemKind` subclass, which is instantiated once, or an
    instance) under its ``name``; returns it unchanged, so it decorates a class.

    TypeError for what is not a ProbeItemKind or has no ``task`` or ``default_template``;
    ValueError for a name that is not a non-empty string or is registered already.
    """
    instance = kind() if isinstance(kind, type) else kind
    if not isinstance(instance, ProbeItemKind):
        raise TypeError(f"an item kind is a ProbeItemKind, got {type(instance).__name__}")
    name = getattr(instance, "name", None)
    if not name or not isinstance(name, str):
        raise ValueError(f"an item kind's name must be a non-empty string, got {name!r}")
    task, template = getattr(instance, "task", None), getattr(instance, "default_template", None)
    if not isinstance(task, ProbeTask) or not isinstance(template, str):
        raise TypeError(f"item kind {name!r} needs a task (a ProbeTask) and a default_template (a str)")
    if name in _KINDS:
        raise ValueError(f"item kind {name!r} is already registered (by {type(_KINDS[name]).__qualname__})")
    _KINDS[name] = instance
    return kind


def unregister_item_kind(name: str) -> ProbeItemKind:
    """Remove a registered item kind (for tests that register their own); returns it."""
    return _KINDS.pop(item_kind_for(name).name)


def item_kind_names() -> tuple[str, ...]:
    """The registered item kinds' names, in registration order."""
    return tuple(_KINDS)


def item_kind_for(name: str) -> ProbeItemKind:
    """The registered item kind ``name``; :class:`UnknownItemKindError` listing the registered ones."""
    try:
        return _KINDS[name]
    except KeyError:
        raise UnknownItemKindError(
            f"no item kind {name!r} is registered (known: {', '.join(_KINDS)}); "
            "fairness_callback.probe.item_kinds.register_item_kind declares one"
        ) from None


def kind_of_items(items: Sequence[Any]) -> ProbeItemKind:
    """The registered kind of ``items``: their first item's (:func:`~fairness_callback.data.sentence.item_kind`);
    ``"sentence"`` for no items."""
    return item_kind_for(item_kind(items[0]) if len(items) else SentenceKind.name)


register_item_kind(SentenceKind)
register_item_kind(BBQKind)
