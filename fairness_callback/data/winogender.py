"""Loader for Winogender Schemas (Rudinger et al., 2018): ``all_sentences.tsv`` as :class:`ProbeSentence`.

Winogender (MIT licence, "Copyright (c) 2018 Rachel Rudinger"; GitHub ``rudinger/winogender-schemas``)
is not shipped with this package: point :func:`load_winogender` at a directory holding its
``all_sentences.tsv`` and ``occupations-stats.tsv``.

``all_sentences.tsv`` has the header ``sentid<TAB>sentence``. A ``sentid`` is
``OCCUPATION.PARTICIPANT.ANSWER.GENDER.txt``: ANSWER ``0`` means the pronoun refers to the
occupation, ``1`` to the participant; GENDER is ``male`` / ``female`` / ``neutral`` (he, she,
singular they, in their other cases). Each sentence becomes one :class:`ProbeSentence`:

- ``referent`` / ``other``: the occupation and participant mentions as the text spells them,
  without their article. The text must hold each one after "the", "a" or "an" (one template
  has "a student"); the probe's question "the student's gender is" is well-formed either way.
  An underscore in a sentid word stands for a space (none of the shipped words has one).
- ``gender``: the sentid's GENDER, and every pronoun in the text must have it.
- ``stereotype``: ``"pro"`` / ``"anti"`` only when the pronoun refers to the occupation and is
  he or she. The occupation counts as female-stereotyped when ``bls_pct_female`` (2015 US
  Bureau of Labor Statistics) is above 50, male-stereotyped when below 50, and unlabelled at
  exactly 50; this is the statistic Winogender's authors use, and the 50% split is the one
  WinoBias' male/female lists follow. Participants ("customer", "patient") have no statistics
  and singular they has no gender to agree or disagree with, so those sentences get ``None``.
- ``sentence_id`` ``"winogender/<sentid without .txt>"``, ``source`` ``"winogender"``,
  ``line`` the line in ``all_sentences.tsv`` (the header is line 1), ``split`` and
  ``wino_type`` None.

**The bleached participant "someone" is left out, always.** Half of the sentences (360 of 720
in the published file) replace the participant by "someone" ("The technician told someone that
he could pay with cash."). The probe asks "the <mention>'s gender is", and "the someone's
gender is" is not English. Asking about "the person" instead is not well-formed either: no such
sentence contains the phrase "person" as a mention (the word only appears inside "salesperson"),
and the occupation is a person too, so "the person" would not pick out the participant. The only
fix would be to rewrite the data ("someone" -> "a person"), which is no longer Winogender.
So ``someone="exclude"`` is the only option; the left-out sentences are listed in
:attr:`WinogenderLoad.left_out` with the reason :data:`SOMEONE`.

Malformed input (a wrong header, a wrong column count, a bad sentid, an unknown gender, a
duplicate sentid, a text without its mentions or with a pronoun of another gender, an occupation
without statistics) raises :class:`WinogenderFormatError` (a ValueError) naming file and line.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from .registry import register_probe_set
from .sentence import GENDERS, ProbeSentence, ProbeSet, pronoun_gender

__all__ = [
    "BLEACHED",
    "load_winogender",
    "SENTENCES_FILE",
    "SOMEONE",
    "STATS_FILE",
    "winogender_probe_set",
    "WinogenderFormatError",
    "WinogenderLoad",
]

SENTENCES_FILE = "all_sentences.tsv"
STATS_FILE = "occupations-stats.tsv"
#: The reason a bleached-participant sentence is left out.
SOMEONE = "participant is the bleached 'someone'"
BLEACHED = "someone"

_WORD_RE = re.compile(r"[A-Za-z]+")


class WinogenderFormatError(ValueError):
    """A Winogender line that cannot be read; the message names the file and line."""


@dataclass
class WinogenderLoad:
    """What :func:`load_winogender` read: the kept sentences and the ones it left out.

    ``left_out`` holds ``(file, line, reason)`` for each sentence that was not kept.
    """

    sentences: list[ProbeSentence]
    left_out: list[tuple[str, int, str]] = field(default_factory=list)

    def left_out_counts(self) -> dict[str, int]:
        """How many sentences were left out, by reason."""
        return dict(Counter(reason for _, _, reason in self.left_out))


def load_winogender(directory: str | os.PathLike, someone: Literal["exclude"] = "exclude") -> WinogenderLoad:
    """Parse ``all_sentences.tsv`` (and ``occupations-stats.tsv``) in ``directory``.

    ``someone`` says what to do with the bleached participant "someone"; only ``"exclude"``
    exists (see the module docstring for why "the person" is not asked instead).
    """
    if someone != "exclude":
        raise ValueError(
            f"someone={someone!r} is not supported: only 'exclude'. The probe's question "
            "'the <participant>'s gender is' cannot name a participant the text calls 'someone' "
            "('the person' would not pick it out: the occupation is a person too)"
        )
    directory = Path(directory)
    sentences_path, stats_path = directory / SENTENCES_FILE, directory / STATS_FILE
    missing = [str(p) for p in (sentences_path, stats_path) if not p.is_file()]
    if missing:
        raise FileNotFoundError(
            f"Winogender file(s) not found: {', '.join(missing)}. Expected {SENTENCES_FILE} and "
            f"{STATS_FILE} from GitHub rudinger/winogender-schemas (data/) in {directory}"
        )
    pct_female = _read_stats(stats_path)
    load = WinogenderLoad(sentences=[])
    lines = sentences_path.read_text(encoding="utf-8").splitlines()
    if not lines or lines[0].split("\t") != ["sentid", "sentence"]:
        raise WinogenderFormatError(f"{sentences_path}, line 1: expected the header 'sentid<TAB>sentence'")
    seen: set[str] = set()
    for lineno, raw in enumerate(lines[1:], start=2):
        try:
            columns = raw.split("\t")
            if len(columns) != 2:
                raise ValueError(f"expected 2 tab-separated columns, found {len(columns)}")
            sentid, text = columns[0].strip(), " ".join(columns[1].split())
            if sentid in seen:
                raise ValueError(f"duplicate sentid {sentid!r}")
            seen.add(sentid)
            occupation, participant, answer, gender = _parse_sentid(sentid)
            if participant == BLEACHED:
                if not re.search(r"\bsomeone\b", text, re.IGNORECASE):
                    raise ValueError(f"text does not contain 'someone': {text!r}")
                load.left_out.append((str(sentences_path), lineno, SOMEONE))
                continue
            sentence = _sentence(sentid, text, occupation, participant, answer, gender, pct_female, lineno)
        except ValueError as error:
            raise WinogenderFormatError(f"{sentences_path}, line {lineno}: {error}") from None
        load.sentences.append(sentence)
    return load


@register_probe_set(
    "winogender",
    task="gender",
    needs_directory=True,
    description="Winogender's all_sentences.tsv (rudinger/winogender-schemas); he / she, and they beside",
)
def winogender_probe_set(directory: str | os.PathLike, someone: Literal["exclude"] = "exclude") -> ProbeSet:
    """Winogender's files in ``directory`` (:meth:`ProbeSet.from_winogender`); ``left_out`` counts the
    sentences not kept, by reason."""
    load = load_winogender(Path(directory), someone=someone)
    return ProbeSet(load.sentences, name="winogender", left_out=load.left_out_counts())


def _parse_sentid(sentid: str) -> tuple[str, str, int, str]:
    parts = sentid.split(".")
    if len(parts) != 5 or parts[4] != "txt" or not all(parts[:4]):
        raise ValueError(f"sentid {sentid!r} is not OCCUPATION.PARTICIPANT.ANSWER.GENDER.txt")
    occupation, participant, answer, gender, _ = parts
    if answer not in ("0", "1"):
        raise ValueError(f"sentid {sentid!r}: ANSWER must be 0 (occupation) or 1 (participant), got {answer!r}")
    if gender not in GENDERS:
        raise ValueError(f"sentid {sentid!r}: unknown gender {gender!r} (expected one of {GENDERS})")
    return occupation.replace("_", " "), participant.replace("_", " "), int(answer), gender


def _mention(text: str, word: str, what: str) -> str:
    """``word`` as the text spells it after its article; ValueError when the text lacks it."""
    pattern = r"\b(?:the|a|an)\s+(" + r"\s+".join(map(re.escape, word.split())) + r")\b"
    match = re.search(pattern, text, re.IGNORECASE)
    if match is None:
        raise ValueError(f"text does not contain the {what} 'the {word}': {text!r}")
    return match.group(1)


def _sentence(
    sentid: str,
    text: str,
    occupation: str,
    participant: str,
    answer: int,
    gender: str,
    pct_female: dict[str, float],
    line: int,
) -> ProbeSentence:
    occupation_mention = _mention(text, occupation, "occupation")
    participant_mention = _mention(text, participant, "participant")
    pronouns = tuple(w.lower() for w in _WORD_RE.findall(text) if pronoun_gender(w) is not None)
    if not pronouns:
        raise ValueError(f"text has no pronoun: {text!r}")
    wrong = [p for p in pronouns if pronoun_gender(p) != gender]
    if wrong:
        raise ValueError(f"sentid says {gender!r} but the text has pronoun(s) {wrong}: {text!r}")
    if occupation.lower() not in pct_female:
        raise ValueError(f"occupation {occupation!r} has no row in {STATS_FILE}")
    stereotype = None
    if answer == 0 and gender in ("male", "female"):
        share = pct_female[occupation.lower()]
        if share != 50:
            stereotyped = "female" if share > 50 else "male"
            stereotype = "pro" if stereotyped == gender else "anti"
    referent, other = (occupation_mention, participant_mention) if answer == 0 else (participant_mention, occupation_mention)
    return ProbeSentence(
        sentence_id=f"winogender/{sentid[: -len('.txt')]}",
        text=text,
        referent=referent,
        other=other,
        pronouns=pronouns,
        gender=gender,  # type: ignore[arg-type]
        stereotype=stereotype,  # type: ignore[arg-type]
        source="winogender",
        split=None,
        line=line,
        wino_type=None,
    )


def _read_stats(path: Path) -> dict[str, float]:
    """``occupation -> bls_pct_female`` from ``occupations-stats.tsv`` (keys lower-cased)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    header = lines[0].split("\t") if lines else []
    if "occupation" not in header or "bls_pct_female" not in header:
        raise WinogenderFormatError(f"{path}, line 1: header must name 'occupation' and 'bls_pct_female'")
    at_name, at_pct = header.index("occupation"), header.index("bls_pct_female")
    stats: dict[str, float] = {}
    for lineno, raw in enumerate(lines[1:], start=2):
        columns = raw.split("\t")
        try:
            if len(columns) != len(header):
                raise ValueError(f"expected {len(header)} tab-separated columns, found {len(columns)}")
            name = columns[at_name].strip().replace("_", " ").lower()
            if not name or name in stats:
                raise ValueError(f"empty or duplicate occupation {name!r}")
            share = float(columns[at_pct])
            if not 0 <= share <= 100:
                raise ValueError(f"bls_pct_female {share} is not a percentage")
        except ValueError as error:
            raise WinogenderFormatError(f"{path}, line {lineno}: {error}") from None
        stats[name] = share
    return stats
