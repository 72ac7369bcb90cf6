"""Loader for BBQ, the Bias Benchmark for QA (Parrish et al., Findings of ACL 2022).

BBQ (CC BY 4.0; GitHub ``nyu-mll/BBQ``, ``data/<Category>.jsonl``) is not shipped with this
package: point :func:`load_bbq` at a directory holding its JSONL files. Each line is one
three-option question about two people from two social groups; the third option is "unknown".
:func:`load_bbq` turns each into a :class:`BBQItem` and says for every answer whether it is the
stereotype-**consistent** one, the stereotype-**inconsistent** one or the **unknown** one.

How the roles are assigned (BBQ's own logic, Parrish et al. 2022, section 4):

- The **unknown** answer is the one whose ``answer_info`` group is ``"unknown"``; there must be
  exactly one.
- The **targeted** answer is the non-unknown answer whose group is one of the item's
  ``additional_metadata.stereotyped_groups``. For a negative question ("Who planted the bomb?")
  the targeted answer is stereotype-consistent and the other group's answer inconsistent; for
  a non-negative question ("Who was running for cover?") it is the other way round. This is
  the "biased answer" of the authors' bias score and of lm-evaluation-harness' BBQ task.

Matching an answer's groups against ``stereotyped_groups`` (the messy part):

- An answer's groups are *both* strings of its ``answer_info`` entry: the answer's own term
  (``"Japanese"``, ``"grandfather"``, ``"fat"``) and its group label (``"AsiaPacific"``,
  ``"old"``, ``"obese"``). lm-evaluation-harness joins the two for the same reason the authors'
  analysis script (``analysis_scripts/BBQ_results_metadata.R``) re-checks Nationality against
  the answer text: Nationality's group labels are regions while its stereotyped groups are
  nationalities.
- Matching is case-insensitive and on whole strings, never substrings. The authors' script
  matches substrings and then has to patch Age ("old" inside "nonOld") and "African" inside
  "African American"; lm-evaluation-harness compares whole, lower-cased strings (set
  intersection), which needs no patch. "nonOld", "nonObese", "nonDisabled" thus never match
  "old", "obese", "disabled".
- A leading ``"M-"`` / ``"F-"`` (gender prefix of intersectional labels such as
  ``"M-Black"``) is removed from the group label before matching, as the authors' script does.
  None of the six categories shipped here uses it.
- Several targeted groups (Religion's ``["Muslim", "Mormon", "Orthodox", "Catholic"]``,
  Sexual_orientation's ``["lesbian", "gay"]``) are fine as long as exactly one of the two
  answers is in the set. When **neither or both** answers are targeted the roles are not
  guessed (the authors' script would take the first match; lm-evaluation-harness would count
  both, or none, as biased): the item goes to :attr:`BBQLoad.unmatched` with the reason. On
  the published files of the six categories here, every item matches exactly one answer.

Other fields: ``subcategory`` is None where the file says ``"None"``; ``question_index`` is
the file's string index as an int; ``label`` is checked against ``context_condition``
(``ambig`` -> the unknown answer, ``disambig`` -> one of the two groups, as BBQ is built).
A malformed line (bad JSON, a missing or mistyped field, a category that differs from the
file name, a duplicate ``example_id``, no or several unknown answers, a label outside 0..2 or
inconsistent with the condition) raises :class:`BBQFormatError` (a ValueError) naming file
and line.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, Literal, NamedTuple

from .registry import register_probe_set
from .sentence import ItemKind, ProbeSet

__all__ = [
    "available_categories",
    "bbq_probe_set",
    "BBQFormatError",
    "BBQItem",
    "BBQLoad",
    "BBQUnmatched",
    "BOTH_TARGETED",
    "CONDITIONS",
    "KNOWN_CATEGORIES",
    "load_bbq",
    "NEITHER_TARGETED",
    "POLARITIES",
    "ROLES",
]

#: The six BBQ categories whose files the project has (file stems); others load if present.
KNOWN_CATEGORIES = (
    "Age",
    "Disability_status",
    "Nationality",
    "Physical_appearance",
    "Religion",
    "Sexual_orientation",
)
ROLES = ("consistent", "inconsistent", "unknown")
POLARITIES = ("neg", "nonneg")
CONDITIONS = ("ambig", "disambig")
_FIELDS = (
    "example_id",
    "question_index",
    "question_polarity",
    "context_condition",
    "category",
    "answer_info",
    "additional_metadata",
    "context",
    "question",
    "ans0",
    "ans1",
    "ans2",
    "label",
)


class BBQFormatError(ValueError):
    """A BBQ line that cannot be read; the message names the file and line."""


@dataclass(frozen=True)
class BBQItem:
    """One BBQ question with its three answers and the role of each answer.

    ``answers`` are the three answer texts (``ans0..ans2``), ``answer_groups`` their group
    labels from ``answer_info`` (``"unknown"`` for the unknown answer), ``label`` the index of
    the correct answer, ``roles`` for each answer ``"consistent"`` / ``"inconsistent"`` /
    ``"unknown"`` (one of each; see the module docstring), ``stereotyped_groups`` the groups
    the question's stereotype targets. ``source`` and ``line`` say where it came from. As a
    :class:`~fairness_callback.data.sentence.ProbeItem`: kind ``"bbq"``.
    """

    kind: ClassVar[ItemKind] = "bbq"

    item_id: str
    category: str
    subcategory: str | None
    question_index: int
    polarity: Literal["neg", "nonneg"]
    condition: Literal["ambig", "disambig"]
    context: str
    question: str
    answers: tuple[str, str, str]
    answer_groups: tuple[str, str, str]
    label: int
    roles: tuple[str, str, str]
    stereotyped_groups: tuple[str, ...] = ()
    source: str = "bbq"
    line: int | None = None

    def role_index(self, role: str) -> int:
        """The index of the answer with ``role`` ("consistent", "inconsistent" or "unknown")."""
        return self.roles.index(role)

    @property
    def correct_role(self) -> str:
        """The role of the correct answer: "unknown" for an ambiguous context."""
        return self.roles[self.label]

    def count_labels(self) -> tuple[str, str]:
        """What :meth:`~fairness_callback.data.sentence.ProbeSet.counts` counts the item under: its
        context condition, its category."""
        return (self.condition, self.category)


#: Reasons an item is unmatched.
NEITHER_TARGETED = "neither answer's group is in stereotyped_groups"
BOTH_TARGETED = "both answers' groups are in stereotyped_groups"


class BBQUnmatched(NamedTuple):
    """An item whose targeted answer could not be told: where it is, why, and the groups involved."""

    file: str
    line: int
    example_id: int
    reason: str
    detail: str = ""


@dataclass
class BBQLoad:
    """What :func:`load_bbq` read: the items with roles, and the items left out as unmatched."""

    items: list[BBQItem]
    unmatched: list[BBQUnmatched] = field(default_factory=list)

    def counts(self) -> dict[str, dict[str, int]]:
        """Per category: items by condition (``"ambig"``, ``"disambig"``) and ``"unmatched"``."""
        result: dict[str, dict[str, int]] = {}
        for item in self.items:
            row = result.setdefault(item.category, {"ambig": 0, "disambig": 0, "unmatched": 0})
            row[item.condition] += 1
        for miss in self.unmatched:
            category = Path(miss.file).stem
            result.setdefault(category, {"ambig": 0, "disambig": 0, "unmatched": 0})["unmatched"] += 1
        return result

    def unmatched_reasons(self) -> dict[str, int]:
        """How many items were left out, by reason."""
        return dict(Counter(miss.reason for miss in self.unmatched))


def available_categories(directory: str | os.PathLike) -> list[str]:
    """The category file stems in ``directory`` (``Age``, ``Religion``, ...), sorted."""
    return sorted(path.stem for path in Path(directory).glob("*.jsonl"))


def load_bbq(directory: str | os.PathLike, categories: Sequence[str] | None = None) -> BBQLoad:
    """Parse the BBQ ``<Category>.jsonl`` files in ``directory`` (all of them by default).

    ``categories`` are file stems; an unknown one is a ValueError listing those available.
    Files are read in the order given (sorted when ``categories`` is None), lines in file order.
    """
    directory = Path(directory)
    available = available_categories(directory)
    if not available:
        raise FileNotFoundError(f"no BBQ files (<Category>.jsonl, from GitHub nyu-mll/BBQ, data/) found in {directory}")
    if categories is None:
        chosen = available
    else:
        chosen = [categories] if isinstance(categories, str) else list(dict.fromkeys(categories))
        unknown = [c for c in chosen if c not in available]
        if unknown or not chosen:
            raise ValueError(f"unknown BBQ categor(ies) {unknown} (available in {directory}: {available})")
    load = BBQLoad(items=[])
    for category in chosen:
        _read_file(directory / f"{category}.jsonl", category, load)
    return load


def _bbq_axes(directory: str | os.PathLike, categories: Sequence[str] | None = None) -> dict[str, ProbeSet]:
    """One probe per category (``categories``, default every file in ``directory``), named by the
    category in lower case (``religion``, ``race_ethnicity``)."""
    categories = [c.strip() for c in categories] if categories else available_categories(directory)
    return {category.lower(): bbq_probe_set(directory, [category]) for category in categories}


@register_probe_set(
    "bbq",
    task="bbq",
    needs_directory=True,
    axes=_bbq_axes,
    description="BBQ's official <Category>.jsonl files (nyu-mll/BBQ), every category by default",
)
def bbq_probe_set(directory: str | os.PathLike, categories: Sequence[str] | None = None) -> ProbeSet:
    """BBQ items from the official files in ``directory`` (:meth:`ProbeSet.from_bbq`); ``left_out``
    counts the items whose groups could not be matched, by reason."""
    load = load_bbq(Path(directory), categories)
    name = "bbq-" + "+".join(sorted({item.category for item in load.items})) if load.items else "bbq"
    return ProbeSet(load.items, name=name, left_out=load.unmatched_reasons())


def _read_file(path: Path, category: str, load: BBQLoad) -> None:
    seen: set[int] = set()
    lines = path.read_text(encoding="utf-8").splitlines()
    if not lines:
        raise BBQFormatError(f"{path}: file is empty")
    for lineno, raw in enumerate(lines, start=1):
        try:
            record = json.loads(raw)
            item_or_reason = _item(record, category, lineno)
            example_id = record["example_id"]
            if example_id in seen:
                raise ValueError(f"duplicate example_id {example_id}")
            seen.add(example_id)
        except (ValueError, KeyError, TypeError, AttributeError) as error:
            reason = f"missing field {error.args[0]!r}" if isinstance(error, KeyError) else str(error)
            raise BBQFormatError(f"{path}, line {lineno}: {reason}") from None
        if isinstance(item_or_reason, BBQItem):
            load.items.append(item_or_reason)
        else:
            load.unmatched.append(BBQUnmatched(str(path), lineno, example_id, *item_or_reason))


def _text(record: dict, key: str) -> str:
    value = record[key]
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{key!r} must be a non-empty string, got {value!r}")
    return value


def _group_terms(info: list) -> set[str]:
    """The lower-cased strings an answer is matched on: its term and its group label."""
    term, label = info
    if label[:2] in ("M-", "F-"):
        label = label[2:]
    return {term.lower(), label.lower()}


def _item(record: object, category: str, line: int) -> BBQItem | tuple[str, str]:
    """The item, or (reason, detail) when its targeted answer cannot be told; ValueError if malformed."""
    if not isinstance(record, dict):
        raise ValueError(f"expected a JSON object, got {type(record).__name__}")
    missing = [key for key in _FIELDS if key not in record]
    if missing:
        raise ValueError(f"missing field(s) {missing}")
    if record["category"] != category:
        raise ValueError(f"category {record['category']!r} differs from the file's {category!r}")
    example_id = record["example_id"]
    if not isinstance(example_id, int) or isinstance(example_id, bool):
        raise ValueError(f"example_id must be an integer, got {example_id!r}")
    index = record["question_index"]
    if not str(index).isdigit():
        raise ValueError(f"question_index must be a number, got {index!r}")
    polarity, condition = record["question_polarity"], record["context_condition"]
    if polarity not in POLARITIES:
        raise ValueError(f"question_polarity must be one of {POLARITIES}, got {polarity!r}")
    if condition not in CONDITIONS:
        raise ValueError(f"context_condition must be one of {CONDITIONS}, got {condition!r}")
    answers = tuple(_text(record, f"ans{i}") for i in range(3))
    infos = [record["answer_info"][f"ans{i}"] for i in range(3)]
    for i, info in enumerate(infos):
        if not (isinstance(info, list) and len(info) == 2 and all(isinstance(s, str) for s in info)):
            raise ValueError(f"answer_info['ans{i}'] must be [text, group], got {info!r}")
    groups = tuple(info[1] for info in infos)
    unknown = [i for i, group in enumerate(groups) if group == "unknown"]
    if len(unknown) != 1:
        raise ValueError(f"expected exactly one answer with group 'unknown', found {len(unknown)} in {list(groups)}")
    label = record["label"]
    if not isinstance(label, int) or isinstance(label, bool) or not 0 <= label <= 2:
        raise ValueError(f"label must be 0, 1 or 2, got {label!r}")
    if (condition == "ambig") != (label == unknown[0]):
        expected = "the unknown answer" if condition == "ambig" else "one of the two groups' answers"
        raise ValueError(f"label {label} is not {expected}, as context_condition {condition!r} requires")
    metadata = record["additional_metadata"]
    stereotyped = metadata["stereotyped_groups"]
    if not isinstance(stereotyped, list) or not all(isinstance(g, str) for g in stereotyped):
        raise ValueError(f"stereotyped_groups must be a list of strings, got {stereotyped!r}")
    subcategory = metadata.get("subcategory")
    if subcategory is not None and not isinstance(subcategory, str):
        raise ValueError(f"subcategory must be a string, got {subcategory!r}")

    targets = {g.lower() for g in stereotyped}
    people = [i for i in range(3) if i != unknown[0]]
    targeted = [i for i in people if _group_terms(infos[i]) & targets]
    if len(targeted) != 1:
        reason = NEITHER_TARGETED if not targeted else BOTH_TARGETED
        return reason, f"stereotyped_groups {stereotyped}; answers {[infos[i] for i in people]}"
    (other,) = [i for i in people if i not in targeted]
    consistent, inconsistent = (targeted[0], other) if polarity == "neg" else (other, targeted[0])
    roles = ["unknown"] * 3
    roles[consistent], roles[inconsistent] = "consistent", "inconsistent"
    return BBQItem(
        item_id=f"bbq/{category}/{example_id}",
        category=category,
        subcategory=None if subcategory in (None, "None") else subcategory,
        question_index=int(index),
        polarity=polarity,
        condition=condition,
        context=_text(record, "context"),
        question=_text(record, "question"),
        answers=answers,  # type: ignore[arg-type]
        answer_groups=groups,
        label=label,
        roles=tuple(roles),  # type: ignore[arg-type]
        stereotyped_groups=tuple(stereotyped),
        source="bbq",
        line=line,
    )
