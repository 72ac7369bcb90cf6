"""Loaders for WinoBias (Zhao et al., 2018): the official bracketed text files and the
Hugging Face ``uclanlp/wino_bias`` row format, both turned into :class:`ProbeSentence`.

The official files (``{pro,anti}_stereotyped_type{1,2}.txt.{dev,test}`` in uclanlp/corefBias,
``WinoBias/wino/data``) hold one sentence per line, ``<n> <sentence>``, with the gold referent
and its pronoun(s) in square brackets::

    1 The developer argued with [the designer] and slapped [her] in the face.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from .occupations import OCCUPATIONS
from .registry import register_probe_set
from .sentence import ProbeSentence, ProbeSet, pronoun_gender

__all__ = [
    "load_winobias",
    "sentences_from_hf_rows",
    "SPLITS",
    "STEREOTYPES",
    "WINO_TYPES",
    "winobias_probe_set",
    "WinoBiasFormatError",
]

WINO_TYPES = (1, 2)
SPLITS = ("dev", "test")
STEREOTYPES = ("pro", "anti")

_OCCUPATION_BY_KEY = {o.lower(): o for o in OCCUPATIONS}
# Longest first, so "construction worker" wins over any shorter alternative at the same place;
# \b keeps "cook" out of "cookies" and "editor" out of "editorial".
_OCCUPATION_RE = re.compile(
    r"\b(" + "|".join(re.escape(o).replace(r"\ ", r"\s+") for o in sorted(OCCUPATIONS, key=len, reverse=True)) + r")\b",
    re.IGNORECASE,
)
_ARTICLE_RE = re.compile(r"^(?:the|a|an)\s+", re.IGNORECASE)
_ENDS_WITH_ARTICLE_RE = re.compile(r"\b(?:the|a|an)\s*$", re.IGNORECASE)
_LINE_RE = re.compile(r"(\d+) (.*\S.*)")
# Tokeniser artefacts: a space before possessive 's (the only kind in the official files),
# n't or closing punctuation (as in the Hugging Face tokens).
_DETACHED_RE = re.compile(r"\s+(?=(?:'s|n't|[.,;:!?])(?:\s|$))", re.IGNORECASE)


class WinoBiasFormatError(ValueError):
    """A WinoBias line or row that cannot be read; the message says where (file and line, or row)."""


class _SentenceError(ValueError):
    """A problem with one sentence; the caller adds where it is."""


def load_winobias(
    directory: Path | str,
    types: Sequence[int] = (2,),
    splits: Sequence[str] = ("dev", "test"),
    stereotypes: Sequence[str] = ("pro", "anti"),
) -> list[ProbeSentence]:
    """Parse the official WinoBias files in ``directory``.

    Files are read in the order: each type, each split, each stereotype; lines in file order.
    Raises :class:`WinoBiasFormatError` for a malformed line, :class:`FileNotFoundError` for a
    missing file and :class:`ValueError` for an unknown type, split or stereotype.
    """
    directory = Path(directory)
    types = _checked("types", types, WINO_TYPES)
    splits = _checked("splits", splits, SPLITS)
    stereotypes = _checked("stereotypes", stereotypes, STEREOTYPES)
    jobs = [
        (wino_type, split, stereotype, directory / f"{stereotype}_stereotyped_type{wino_type}.txt.{split}")
        for wino_type in types
        for split in splits
        for stereotype in stereotypes
    ]
    missing = [str(path) for *_, path in jobs if not path.is_file()]
    if missing:
        raise FileNotFoundError(
            f"WinoBias file(s) not found: {', '.join(missing)}. Expected the official files "
            f"{{pro,anti}}_stereotyped_type{{1,2}}.txt.{{dev,test}} (uclanlp/corefBias, "
            f"WinoBias/wino/data) in {directory}"
        )
    sentences: list[ProbeSentence] = []
    for wino_type, split, stereotype, path in jobs:
        sentences.extend(_read_file(path, wino_type, split, stereotype))
    return sentences


@register_probe_set(
    "winobias",
    task="gender",
    needs_directory=True,
    description="the official WinoBias files (uclanlp/corefBias), Type 2 dev + test by default",
)
def winobias_probe_set(
    directory: str | os.PathLike,
    types: Sequence[int] = (2,),
    splits: Sequence[str] = ("dev", "test"),
    stereotypes: Sequence[str] = ("pro", "anti"),
) -> ProbeSet:
    """The official WinoBias files in ``directory`` (:meth:`ProbeSet.from_winobias`)."""
    types = (types,) if isinstance(types, int) else tuple(types)
    splits = (splits,) if isinstance(splits, str) else tuple(splits)
    sentences = load_winobias(Path(directory), types=types, splits=splits, stereotypes=stereotypes)
    return ProbeSet(sentences, name=f"winobias-type{'+'.join(map(str, types))}-{'+'.join(splits)}")


def sentences_from_hf_rows(
    rows: Iterable[Mapping],
    stereotype: str | None = None,
    split: str | None = None,
    wino_type: int | None = None,
    id_prefix: str = "wino_bias-hf",
) -> list[ProbeSentence]:
    """Sentences from rows in the Hugging Face ``uclanlp/wino_bias`` format.

    Each row needs ``tokens`` and ``coreference_clusters``: the gold cluster flattened into
    inclusive ``[start, end, start, end, ...]`` token indices (as strings or ints), one pair per
    mention. The rows do not say their type or stereotype; the config name does (``"type2_pro"``
    is ``wino_type=2, stereotype="pro"``), so pass them. ``split`` is stored as given (the hub
    calls the dev split ``"validation"``). Errors name the row index and its ``document_id``.
    """
    if stereotype not in (None, *STEREOTYPES):
        raise ValueError(f"stereotype: expected one of {STEREOTYPES} or None, got {stereotype!r}")
    if wino_type not in (None, *WINO_TYPES):
        raise ValueError(f"wino_type: expected one of {WINO_TYPES} or None, got {wino_type!r}")
    labels = [f"type{wino_type}" if wino_type else None, split, stereotype]
    prefix = "/".join([id_prefix, *(label for label in labels if label)])
    sentences = []
    for index, row in enumerate(rows):
        try:
            fields = _sentence_fields(_row_pieces(row), "coreferent")
        except (_SentenceError, KeyError, TypeError) as error:
            document_id = row.get("document_id") if isinstance(row, Mapping) else None
            raise WinoBiasFormatError(f"row {index} (document_id {document_id!r}): {_reason(error)}") from error
        sentences.append(
            ProbeSentence(
                sentence_id=f"{prefix}/{index}",
                stereotype=stereotype,  # type: ignore[arg-type]
                source="wino_bias-hf",
                split=split,
                wino_type=wino_type,
                **fields,
            )
        )
    return sentences


# -- official text files ----------------------------------------------------------------------


def _checked(name: str, values: Sequence, allowed: tuple) -> tuple:
    """``values`` as a de-duplicated tuple, or ValueError naming the argument."""
    if isinstance(values, (str, int)):
        values = (values,)
    values = tuple(dict.fromkeys(values))
    if not values:
        raise ValueError(f"{name}: must not be empty (choose from {allowed})")
    for value in values:
        if value not in allowed:
            raise ValueError(f"{name}: unknown value {value!r} (expected one of {allowed})")
    return values


def _read_file(path: Path, wino_type: int, split: str, stereotype: str) -> list[ProbeSentence]:
    lines = path.read_text(encoding="utf-8").splitlines()
    if not lines:
        raise WinoBiasFormatError(f"{path}: file is empty")
    sentences = []
    for lineno, raw in enumerate(lines, start=1):
        try:
            match = _LINE_RE.fullmatch(raw)
            if match is None:
                raise _SentenceError("expected '<line number> <sentence>'")
            number = int(match.group(1))
            if number != lineno:
                raise _SentenceError(f"line number {number} out of order (expected {lineno})")
            fields = _sentence_fields(_bracket_pieces(match.group(2)), "bracketed")
        except _SentenceError as error:
            raise WinoBiasFormatError(f"{path}, line {lineno}: {error}") from None
        sentences.append(
            ProbeSentence(
                sentence_id=f"winobias/type{wino_type}/{split}/{stereotype}/{number}",
                stereotype=stereotype,  # type: ignore[arg-type]
                source="winobias",
                split=split,
                line=number,
                wino_type=wino_type,
                **fields,
            )
        )
    return sentences


def _bracket_pieces(sentence: str) -> list[tuple[str, str]]:
    """Split a bracketed sentence into ``("text" | "span", string)`` pieces."""
    pieces: list[tuple[str, str]] = []
    rest = sentence
    while rest:
        open_at, close_at = rest.find("["), rest.find("]")
        if close_at >= 0 and (open_at < 0 or close_at < open_at):
            raise _SentenceError("unbalanced brackets: ']' without '['")
        if open_at < 0:
            pieces.append(("text", rest))
            break
        if close_at < 0:
            raise _SentenceError("unbalanced brackets: '[' without ']'")
        inner = rest[open_at + 1 : close_at]
        if "[" in inner:
            raise _SentenceError("unbalanced brackets: '[' inside a bracketed span")
        if not inner.strip():
            raise _SentenceError("empty brackets")
        pieces.append(("text", rest[:open_at]))
        pieces.append(("span", inner))
        rest = rest[close_at + 1 :]
    return pieces


# -- Hugging Face rows ------------------------------------------------------------------------


def _row_pieces(row: Mapping) -> list[tuple[str, str]]:
    """Tokens and the flattened gold cluster of a row as ``("text" | "span", string)`` pieces."""
    tokens = [str(token) for token in row["tokens"]]
    flat = list(row["coreference_clusters"])
    if not flat or len(flat) % 2:
        raise _SentenceError(f"coreference_clusters must be [start, end, ...] pairs, got {flat!r}")
    try:
        bounds = [int(value) for value in flat]
    except ValueError:
        raise _SentenceError(f"coreference_clusters holds a non-integer: {flat!r}") from None
    spans = sorted(zip(bounds[0::2], bounds[1::2]))
    pieces: list[tuple[str, str]] = []
    position = 0
    for start, end in spans:
        if not position <= start <= end < len(tokens):
            raise _SentenceError(f"coreference span [{start}, {end}] is out of range or overlaps another ({len(tokens)} tokens)")
        pieces.append(("text", " ".join(tokens[position:start])))
        pieces.append(("span", " ".join(tokens[start : end + 1])))
        position = end + 1
    pieces.append(("text", " ".join(tokens[position:])))
    return pieces


# -- shared -----------------------------------------------------------------------------------


def _sentence_fields(pieces: list[tuple[str, str]], mark: str) -> dict:
    """text, referent, other, pronouns and gender from text pieces and coreferent spans.

    ``mark`` names the spans in messages: "bracketed" (files) or "coreferent" (rows).
    """
    referent_at: int | None = None
    referent = ""
    pronoun_at: list[int] = []
    for at, (kind, string) in enumerate(pieces):
        if kind != "span":
            continue
        if _binary_gender(string) is not None:
            pronoun_at.append(at)
            continue
        occupation = _canonical(string)
        if occupation is None:
            raise _SentenceError(f"{mark} span {string.strip()!r} is neither a gendered pronoun nor one of the 40 occupations")
        if referent_at is not None:
            raise _SentenceError(f"more than one {mark} occupation ({referent!r}, {occupation!r})")
        referent_at, referent = at, occupation
    if referent_at is None:
        raise _SentenceError(f"no {mark} occupation")
    if not pronoun_at:
        raise _SentenceError(f"no {mark} pronoun")
    pronouns = tuple(pieces[at][1].strip().lower() for at in pronoun_at)
    genders = {_binary_gender(p) for p in pronouns}
    if len(genders) > 1:
        raise _SentenceError(f"{mark} pronouns disagree in gender: {pronouns}")

    others = _others(pieces, referent_at, referent, len(pieces))
    if len(others) > 1:
        # A third occupation after the pronoun is circumstance, not the distractor
        # (dev 72: "The developer hated [the cleaner] and reported [her] to the manager.").
        others = _others(pieces, referent_at, referent, min(pronoun_at))
    if len(others) != 1:
        found = ", ".join(map(repr, others)) or "none"
        raise _SentenceError(f"expected exactly one other occupation outside the referent, found {found}")

    return {
        "text": _plain_text(pieces, referent_at),
        "referent": referent,
        "other": others[0],
        "pronouns": pronouns,
        "gender": genders.pop(),
    }


def _binary_gender(word: str) -> str | None:
    """he/she pronouns only: WinoBias has no singular they, so a bracketed "they" stays an error."""
    gender = pronoun_gender(word)
    return gender if gender in ("male", "female") else None


def _canonical(mention: str) -> str | None:
    """The OCCUPATIONS spelling of a mention like ``"The CEO"`` or ``"an assistant"``, else None."""
    words = _ARTICLE_RE.sub("", " ".join(mention.split()))
    return _OCCUPATION_BY_KEY.get(words.lower())


def _others(pieces: list[tuple[str, str]], referent_at: int, referent: str, stop: int) -> list[str]:
    """Distinct occupations other than ``referent`` in ``pieces[:stop]``, skipping the referent span."""
    # " | " keeps a match from running across the removed span.
    outside = " | ".join(string for at, (_, string) in enumerate(pieces[:stop]) if at != referent_at)
    found = (_canonical(m.group(1)) for m in _OCCUPATION_RE.finditer(outside))
    return list(dict.fromkeys(o for o in found if o and o != referent))


def _plain_text(pieces: list[tuple[str, str]], referent_at: int) -> str:
    strings = [string for _, string in pieces]
    # "the [the chief]": keep the outer determiner (and its case), drop the inner one.
    if _ENDS_WITH_ARTICLE_RE.search(strings[referent_at - 1]):
        strings[referent_at] = _ARTICLE_RE.sub("", strings[referent_at].strip())
    text = " ".join(" ".join(strings).split())
    return _DETACHED_RE.sub("", text)


def _reason(error: Exception) -> str:
    if isinstance(error, KeyError):
        return f"missing field {error.args[0]!r}"
    return str(error)
