"""The probe's units of data: the item protocol, one coreference sentence, and an ordered set of items."""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import ClassVar, Literal, Protocol, TypeAlias, runtime_checkable

__all__ = [
    "BBQFields",
    "FEMALE_PRONOUNS",
    "Gender",
    "GENDERS",
    "item_count_labels",
    "item_id",
    "item_kind",
    "ITEM_KINDS",
    "ItemKind",
    "MALE_PRONOUNS",
    "NEUTRAL_PRONOUNS",
    "ProbeItem",
    "ProbeSentence",
    "ProbeSet",
    "pronoun_gender",
    "WINOBIAS_ENV",
]

Gender = Literal["male", "female", "neutral"]
#: The genders a ProbeSentence may have: "neutral" is a singular-they sentence, whose text says
#: nothing about the referent's gender (the probe expects "not specified" for both prompts).
GENDERS: tuple[str, ...] = ("male", "female", "neutral")

#: Environment variable that points the probe at the official WinoBias files.
WINOBIAS_ENV = "FAIRNESS_WINOBIAS_DIR"

MALE_PRONOUNS = frozenset({"he", "him", "his", "himself"})
FEMALE_PRONOUNS = frozenset({"she", "her", "hers", "herself"})
#: Singular they in all its cases ("themself" is the less common singular reflexive).
NEUTRAL_PRONOUNS = frozenset({"they", "them", "their", "theirs", "themselves", "themself"})


def pronoun_gender(pronoun: str) -> Gender | None:
    """'male' / 'female' / 'neutral' (singular they) for a personal pronoun (any case), None otherwise.

    Whether a they/them is singular cannot be told from the word; callers that only accept
    he/she (the WinoBias parser) must reject 'neutral' themselves.
    """
    word = pronoun.strip().lower()
    if word in MALE_PRONOUNS:
        return "male"
    if word in FEMALE_PRONOUNS:
        return "female"
    if word in NEUTRAL_PRONOUNS:
        return "neutral"
    return None


#: What a probe item is, and so how it is prompted and scored: a name, the item's ``kind``. The package's
#: own (:data:`ITEM_KINDS`): ``"sentence"`` (a :class:`ProbeSentence`, the gender task) and ``"bbq"``
#: (a :class:`~fairness_callback.data.bbq.BBQItem`, the BBQ task). A new kind is a class of items
#: whose ``kind`` is its name, a task that holds them
#: (:func:`~fairness_callback.data.registry.register_task`) and, in the probe, its prompts
#: (:func:`~fairness_callback.probe.item_kinds.register_item_kind`).
ItemKind: TypeAlias = str
#: The package's own item kinds.
ITEM_KINDS: tuple[str, ...] = ("sentence", "bbq")


@runtime_checkable
class ProbeItem(Protocol):
    """What every item of a :class:`ProbeSet` has: an ``item_id``, unique in its set (a sentence's
    ``sentence_id``, a BBQ item's own), and its ``kind`` (:data:`ItemKind`), which says how the probe
    prompts and scores it. :class:`ProbeSentence` and :class:`~fairness_callback.data.bbq.BBQItem`
    implement it.

    An item may also have ``count_labels()``, the labels :meth:`ProbeSet.counts` counts it under
    (a sentence: its gender and stereotype; a BBQ item: its condition and category; without it, its
    kind), and ``occupations``, the occupations it mentions (:meth:`ProbeSet.occupations`)."""

    @property
    def item_id(self) -> str: ...

    @property
    def kind(self) -> ItemKind: ...


@runtime_checkable
class BBQFields(Protocol):
    """The fields a BBQ prompt is built from (:func:`~fairness_callback.probe.prompts.build_bbq_prompts`).
    An item without a ``kind`` that has them (a BBQ-shaped stand-in, such as a test's) is of kind ``"bbq"``."""

    item_id: str
    context: str
    question: str
    answers: Sequence[str]
    roles: Sequence[str]
    label: int


def item_kind(item: object) -> ItemKind:
    """The kind of a probe item: its ``kind`` (a :class:`ProbeItem`: ProbeSentence, BBQItem); an item
    without one is ``"bbq"`` when it has the fields of a BBQ item (:class:`BBQFields`), else ``"sentence"``."""
    if isinstance(item, ProbeItem):
        return item.kind
    return "bbq" if isinstance(item, BBQFields) else "sentence"


def item_count_labels(item: object) -> tuple[str, ...]:
    """The labels :meth:`ProbeSet.counts` counts an item under: its ``count_labels()``, else its kind."""
    labels = getattr(item, "count_labels", None)
    return tuple(labels()) if callable(labels) else (item_kind(item),)


def item_id(item: object) -> str:
    """The id of a probe item: its ``item_id`` (a :class:`ProbeItem`, or BBQ-shaped), else a sentence's ``sentence_id``."""
    return item.item_id if isinstance(item, (ProbeItem, BBQFields)) else item.sentence_id  # type: ignore[attr-defined]


@dataclass(frozen=True)
class ProbeSentence:
    """One Type-2-style sentence: a pronoun that refers to one of two occupations.

    ``text`` is the plain sentence (no brackets). ``referent`` is the occupation the pronoun
    refers to and ``other`` the second occupation, both without article (e.g. ``"developer"``,
    ``"CEO"``, ``"construction worker"``). ``gender`` is the pronoun's gender: ``"male"``,
    ``"female"``, or ``"neutral"`` for singular they (the text then says nothing about the
    referent's gender). ``stereotype`` is ``"pro"`` / ``"anti"`` when the source says so.
    ``source``, ``split``, ``line`` and ``wino_type`` say where the sentence came from, so an
    error or a record can point back at it. ("Occupation" is loose for Winogender, whose second
    mention is a participant such as "customer".) As a :class:`ProbeItem`: kind ``"sentence"``,
    ``item_id`` its ``sentence_id``.
    """

    kind: ClassVar[ItemKind] = "sentence"

    sentence_id: str
    text: str
    referent: str
    other: str
    pronouns: tuple[str, ...]
    gender: Gender
    stereotype: Literal["pro", "anti"] | None = None
    source: str = "custom"
    split: str | None = None
    line: int | None = None
    wino_type: int | None = None

    def __post_init__(self) -> None:
        where = f"sentence {self.sentence_id!r}"
        if self.gender not in GENDERS:
            raise ValueError(f"{where}: gender must be one of {GENDERS}, got {self.gender!r}")
        if self.stereotype not in (None, "pro", "anti"):
            raise ValueError(f"{where}: stereotype must be 'pro', 'anti' or None, got {self.stereotype!r}")
        if not self.text.strip() or not self.referent.strip() or not self.other.strip():
            raise ValueError(f"{where}: text, referent and other must be non-empty")
        if self.referent.lower() == self.other.lower():
            raise ValueError(f"{where}: referent and other occupation are both {self.referent!r}")

    @property
    def item_id(self) -> str:
        """The :class:`ProbeItem` id: ``sentence_id``."""
        return self.sentence_id

    @property
    def occupations(self) -> tuple[str, str]:
        """The two occupations the sentence mentions: ``referent``, ``other``."""
        return (self.referent, self.other)

    def count_labels(self) -> tuple[str, str]:
        """What :meth:`ProbeSet.counts` counts the sentence under: its gender, its stereotype (``"unlabelled"``: none)."""
        return (self.gender, self.stereotype or "unlabelled")

    def to_dict(self) -> dict:
        data = asdict(self)
        data["pronouns"] = list(self.pronouns)
        return data

    @classmethod
    def from_dict(cls, data: dict) -> ProbeSentence:
        data = dict(data)
        data["pronouns"] = tuple(data.get("pronouns", ()))
        return cls(**data)


class ProbeSet(Sequence[ProbeItem]):
    """An ordered, immutable collection of probe items (:class:`ProbeItem`) with unique ids: gender
    sentences (:class:`ProbeSentence`) or BBQ items (:class:`~fairness_callback.data.bbq.BBQItem`),
    all of one kind (:attr:`kind`).

    Build one by name with :func:`fairness_callback.data.registry.probe_set` (every registered set;
    :func:`~fairness_callback.data.registry.probe_set_names`), or with :meth:`builtin` (the package's
    own sentences, the default), :meth:`builtin_they` (the package's singular-they sentences),
    :meth:`from_winobias` (the official WinoBias text files), :meth:`from_winogender` (Winogender's
    ``all_sentences.tsv``), :meth:`from_bbq` (BBQ's official files), :meth:`from_hf_rows` (rows in
    the Hugging Face ``uclanlp/wino_bias`` format) or :meth:`default` (WinoBias if
    ``$FAIRNESS_WINOBIAS_DIR`` is set, else built-in). ``len()`` is the number of items; each
    sentence gives two prompts per option-order seed, each BBQ item one. ``left_out`` counts, by
    reason, the source's items that a constructor did not keep (empty unless the constructor fills it).
    """

    def __init__(
        self,
        items: Iterable[ProbeItem],
        name: str = "custom",
        left_out: Mapping[str, int] | None = None,
    ) -> None:
        self._items = tuple(items)
        self.name = name
        self.left_out: dict[str, int] = dict(left_out or {})
        seen: set[str] = set()
        for item in self._items:
            key = item_id(item)
            if key in seen:
                raise ValueError(f"probe set {name!r}: duplicate sentence id {key!r}")
            seen.add(key)
        if not self._items:
            raise ValueError(f"probe set {name!r} is empty")

    # -- constructors (each a registered set: fairness_callback.data.registry) ---------------
    @classmethod
    def builtin(cls) -> ProbeSet:
        """The built-in probe set shipped with the package (not WinoBias; see ``data/BUILTIN.md``)."""
        from .registry import probe_set

        return probe_set("builtin")

    @classmethod
    def builtin_they(cls) -> ProbeSet:
        """The built-in singular-they set (gender "neutral"; see ``data/BUILTIN_THEY.md``)."""
        from .registry import probe_set

        return probe_set("builtin-they")

    @classmethod
    def from_winogender(cls, directory: str | os.PathLike, **kwargs) -> ProbeSet:
        """Winogender's ``all_sentences.tsv``; ``left_out`` counts the sentences not kept, by reason.

        ``kwargs`` go to :func:`fairness_callback.data.winogender.load_winogender`.
        """
        from .registry import probe_set

        return probe_set("winogender", directory=directory, **kwargs)

    @classmethod
    def from_winobias(
        cls,
        directory: str | os.PathLike,
        types: Sequence[int] = (2,),
        splits: Sequence[str] = ("dev", "test"),
        stereotypes: Sequence[str] = ("pro", "anti"),
    ) -> ProbeSet:
        """Parse the official WinoBias ``{pro,anti}_stereotyped_type{T}.txt.{split}`` files."""
        from .registry import probe_set

        return probe_set("winobias", directory=directory, types=types, splits=splits, stereotypes=stereotypes)

    @classmethod
    def from_bbq(cls, directory: str | os.PathLike, categories: Sequence[str] | None = None) -> ProbeSet:
        """BBQ items (:class:`~fairness_callback.data.bbq.BBQItem`) from the official files; ``left_out``
        counts the items whose groups could not be matched, by reason. A probe of this set scores
        the BBQ task (stereotype-consistent, -inconsistent and unknown answers)."""
        from .registry import probe_set

        return probe_set("bbq", directory=directory, categories=categories)

    @classmethod
    def from_hf_rows(cls, rows: Iterable[dict], name: str = "wino_bias-hf", **kwargs) -> ProbeSet:
        """Rows in the Hugging Face ``uclanlp/wino_bias`` format (tokens + coreference clusters)."""
        from .winobias import sentences_from_hf_rows

        return cls(sentences_from_hf_rows(rows, **kwargs), name=name)

    @classmethod
    def default(cls, winobias_dir: str | os.PathLike | None = None) -> ProbeSet:
        """WinoBias Type 2 from ``winobias_dir`` or ``$FAIRNESS_WINOBIAS_DIR``; else the built-in set."""
        directory = winobias_dir or os.environ.get(WINOBIAS_ENV)
        if directory:
            return cls.from_winobias(directory)
        return cls.builtin()

    # -- sequence protocol --------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._items)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return ProbeSet(self._items[index], name=self.name)
        return self._items[index]

    def __iter__(self) -> Iterator[ProbeItem]:
        return iter(self._items)

    @property
    def kind(self) -> ItemKind:
        """The kind of the set's items (:data:`ItemKind`, read from its first item): ``"sentence"``, ``"bbq"``, ..."""
        return item_kind(self._items[0])

    def __repr__(self) -> str:
        return f"ProbeSet(name={self.name!r}, sentences={len(self)})"

    def counts(self) -> dict[str, int]:
        """Item counts by each of the items' count labels (for summaries and tests): sentences by pronoun
        gender and by stereotype, BBQ items by context condition and by category; an item without
        ``count_labels()`` is counted under its kind. The first label of every item comes first."""
        labels = [item_count_labels(item) for item in self._items]
        counts: Counter[str] = Counter()
        for position in range(max(len(each) for each in labels)):
            counts.update(each[position] for each in labels if len(each) > position)
        return dict(counts)

    def occupations(self) -> set[str]:
        """The occupations the items mention (their ``occupations``; none for BBQ items)."""
        return {occupation for item in self._items for occupation in getattr(item, "occupations", ())}
