"""The probe's unit of data: one coreference sentence, and an ordered set of them."""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterable, Iterator, Literal, Mapping, Sequence

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
    mention is a participant such as "customer".)
    """

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

    def to_dict(self) -> dict:
        data = asdict(self)
        data["pronouns"] = list(self.pronouns)
        return data

    @classmethod
    def from_dict(cls, data: dict) -> "ProbeSentence":
        data = dict(data)
        data["pronouns"] = tuple(data.get("pronouns", ()))
        return cls(**data)


class ProbeSet(Sequence[ProbeSentence]):
    """An ordered, immutable collection of :class:`ProbeSentence` with unique ids.

    Build one with :meth:`builtin` (the package's own sentences, the default),
    :meth:`builtin_they` (the package's singular-they sentences), :meth:`from_winobias`
    (the official WinoBias text files), :meth:`from_winogender` (Winogender's
    ``all_sentences.tsv``), :meth:`from_hf_rows` (rows in the Hugging Face
    ``uclanlp/wino_bias`` format) or :meth:`default` (WinoBias if ``$FAIRNESS_WINOBIAS_DIR``
    is set, else built-in). ``len()`` is the number of sentences; each sentence gives two
    prompts per option-order seed. ``left_out`` counts, by reason, the source's sentences
    that a constructor did not keep (empty unless the constructor fills it).
    """

    def __init__(
        self,
        sentences: Iterable[ProbeSentence],
        name: str = "custom",
        left_out: Mapping[str, int] | None = None,
    ) -> None:
        self._sentences = tuple(sentences)
        self.name = name
        self.left_out: dict[str, int] = dict(left_out or {})
        seen: set[str] = set()
        for sentence in self._sentences:
            key = sentence.sentence_id if hasattr(sentence, "sentence_id") else sentence.item_id  # a BBQ item
            if key in seen:
                raise ValueError(f"probe set {name!r}: duplicate sentence id {key!r}")
            seen.add(key)
        if not self._sentences:
            raise ValueError(f"probe set {name!r} is empty")

    # -- constructors -------------------------------------------------------------------------
    @classmethod
    def builtin(cls) -> "ProbeSet":
        """The built-in probe set shipped with the package (not WinoBias; see ``data/BUILTIN.md``)."""
        from .builtin import load_builtin

        return cls(load_builtin(), name="builtin")

    @classmethod
    def builtin_they(cls) -> "ProbeSet":
        """The built-in singular-they set (gender "neutral"; see ``data/BUILTIN_THEY.md``)."""
        from .builtin_they import load_builtin_they

        return cls(load_builtin_they(), name="builtin-they")

    @classmethod
    def from_winogender(cls, directory: str | os.PathLike, **kwargs) -> "ProbeSet":
        """Winogender's ``all_sentences.tsv``; ``left_out`` counts the sentences not kept, by reason.

        ``kwargs`` go to :func:`fairness_callback.data.winogender.load_winogender`.
        """
        from .winogender import load_winogender

        load = load_winogender(Path(directory), **kwargs)
        return cls(load.sentences, name="winogender", left_out=load.left_out_counts())

    @classmethod
    def from_winobias(
        cls,
        directory: str | os.PathLike,
        types: Sequence[int] = (2,),
        splits: Sequence[str] = ("dev", "test"),
        stereotypes: Sequence[str] = ("pro", "anti"),
    ) -> "ProbeSet":
        """Parse the official WinoBias ``{pro,anti}_stereotyped_type{T}.txt.{split}`` files."""
        from .winobias import load_winobias

        types = (types,) if isinstance(types, int) else tuple(types)
        splits = (splits,) if isinstance(splits, str) else tuple(splits)
        sentences = load_winobias(Path(directory), types=types, splits=splits, stereotypes=stereotypes)
        return cls(sentences, name=f"winobias-type{'+'.join(map(str, types))}-{'+'.join(splits)}")

    @classmethod
    def from_bbq(cls, directory: str | os.PathLike, categories: Sequence[str] | None = None) -> "ProbeSet":
        """BBQ items (:class:`~fairness_callback.data.bbq.BBQItem`) from the official files; ``left_out``
        counts the items whose groups could not be matched, by reason. A probe of this set scores
        the BBQ task (stereotype-consistent, -inconsistent and unknown answers)."""
        from .bbq import load_bbq

        load = load_bbq(Path(directory), categories)
        name = "bbq-" + "+".join(sorted({item.category for item in load.items})) if load.items else "bbq"
        return cls(load.items, name=name, left_out=load.unmatched_reasons())

    @classmethod
    def from_hf_rows(cls, rows: Iterable[dict], name: str = "wino_bias-hf", **kwargs) -> "ProbeSet":
        """Rows in the Hugging Face ``uclanlp/wino_bias`` format (tokens + coreference clusters)."""
        from .winobias import sentences_from_hf_rows

        return cls(sentences_from_hf_rows(rows, **kwargs), name=name)

    @classmethod
    def default(cls, winobias_dir: str | os.PathLike | None = None) -> "ProbeSet":
        """WinoBias Type 2 from ``winobias_dir`` or ``$FAIRNESS_WINOBIAS_DIR``; else the built-in set."""
        directory = winobias_dir or os.environ.get(WINOBIAS_ENV)
        if directory:
            return cls.from_winobias(directory)
        return cls.builtin()

    # -- sequence protocol --------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._sentences)

    def __getitem__(self, index):  # type: ignore[override]
        if isinstance(index, slice):
            return ProbeSet(self._sentences[index], name=self.name)
        return self._sentences[index]

    def __iter__(self) -> Iterator[ProbeSentence]:
        return iter(self._sentences)

    def __repr__(self) -> str:
        return f"ProbeSet(name={self.name!r}, sentences={len(self)})"

    def counts(self) -> dict[str, int]:
        """Sentence counts by pronoun gender and by stereotype; for BBQ items, by context condition
        and by category (for summaries and tests)."""
        if self._sentences and not hasattr(self._sentences[0], "gender"):
            counts = Counter(item.condition for item in self._sentences)
            counts.update(item.category for item in self._sentences)
            return dict(counts)
        counts = Counter(s.gender for s in self._sentences)
        counts.update(s.stereotype or "unlabelled" for s in self._sentences)
        return dict(counts)

    def occupations(self) -> set[str]:
        """The occupations the sentences mention (empty for BBQ items)."""
        if self._sentences and not hasattr(self._sentences[0], "referent"):
            return set()
        return {s.referent for s in self._sentences} | {s.other for s in self._sentences}
