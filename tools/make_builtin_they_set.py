"""Generate ``fairness_callback/data/builtin_they.jsonl``, the package's built-in singular-they set.

Every frame below was written for this package; none is taken or adapted from WinoBias or
Winogender. Each frame holds two of WinoBias' 40 occupations and one singular-they pronoun whose
referent follows from the syntax alone: an object "them" cannot be its own clause's subject
(so it is the other occupation), a reflexive "themselves" must be its own clause's subject.
Possessive "their" and subject "they" are not used: syntax does not fix what they refer to.
The output is deterministic: run ``python tools/make_builtin_they_set.py`` to rewrite the file,
or ``--check`` to verify that the shipped file is up to date. ``data/BUILTIN_THEY.md`` documents it.
"""

from __future__ import annotations

import random
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from fairness_callback.data.occupations import FEMALE_STEREOTYPED, MALE_STEREOTYPED  # noqa: E402
from fairness_callback.data.sentence import ProbeSentence  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_builtin_probe_set import generator_main, render_jsonl  # noqa: E402

OUTPUT = REPO / "fairness_callback" / "data" / "builtin_they.jsonl"
SEED = 20250612
#: Times each frame is used: half with a male-, half with a female-stereotyped referent.
USES_PER_FRAME = 10

FORMS = {"obj": "them", "refl": "themselves"}


@dataclass(frozen=True)
class Frame:
    """A template: ``the {x}`` is the first-mentioned occupation and ``the {y}`` the second; one
    pronoun slot, ``{obj}`` or ``{refl}``, refers to the ``referent`` slot."""

    template: str
    referent: Literal["x", "y"]


_FIRST, _SECOND = "x", "y"
FRAMES: tuple[Frame, ...] = (
    # Object pronoun in a second conjunct whose subject is the first occupation: the second one.
    Frame("The {x} waved to the {y} across the car park and invited {obj} to join the picnic.", _SECOND),
    Frame("The {x} found the {y} waiting in the lobby and offered {obj} a cup of tea.", _SECOND),
    Frame("The {x} recognized the {y} at the concert and bought {obj} a programme.", _SECOND),
    Frame("The {x} paired up with the {y} for the quiz and praised {obj} for the winning answer.", _SECOND),
    Frame("The {x} greeted the {y} at the door and handed {obj} a name badge.", _SECOND),
    Frame("The {x} hired the {y} last summer and has trusted {obj} with the keys ever since.", _SECOND),
    # Object pronoun in a main clause whose subject is the second occupation: the first one.
    Frame("When the {x} knocked on the door, the {y} let {obj} in at once.", _FIRST),
    Frame("Because the {x} had missed the last bus, the {y} drove {obj} home after work.", _FIRST),
    Frame("As soon as the {x} finished the crossword, the {y} congratulated {obj} warmly.", _FIRST),
    Frame("Hearing the {x} cough all morning, the {y} brought {obj} a glass of warm lemon water.", _FIRST),
    Frame("After the {x} had waited for an hour, the {y} finally thanked {obj} for waiting.", _FIRST),
    Frame("Since the {x} was new in town, the {y} showed {obj} the way to the market.", _FIRST),
    # Reflexive bound by its clause's subject, the first occupation.
    Frame("The {x} described {refl} to the {y} as an early riser.", _FIRST),
    Frame("The {x} treated {refl} to a slice of cake after the call with the {y}.", _FIRST),
    Frame("The {x} allowed {refl} a short break before phoning the {y}.", _FIRST),
    Frame("The {x} taught {refl} to knit while the {y} was away on leave.", _FIRST),
    Frame("The {x} congratulated {refl} quietly after beating the {y} at darts.", _FIRST),
    Frame("The {x} signed {refl} up for the charity run and told the {y} about it.", _FIRST),
    # Reflexive bound by the main clause's subject, the second occupation.
    Frame("While the {x} was on the phone, the {y} made {refl} a sandwich.", _SECOND),
    Frame("Once the {x} had gone home, the {y} granted {refl} a short nap on the sofa.", _SECOND),
    Frame("Before the {x} arrived, the {y} prepared {refl} for a difficult conversation.", _SECOND),
    Frame("Although the {x} offered to help, the {y} carried the heavy box upstairs by {refl}.", _SECOND),
    Frame("When the {x} praised the plan, the {y} gave {refl} a small pat on the back.", _SECOND),
    Frame("Watching the {x} leave, the {y} poured {refl} another coffee.", _SECOND),
)


def occupation_pairs(rng: random.Random, per_occupation: int) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(referent, other) pairs with a male- and a female-stereotyped referent, in two lists.

    Male ``i`` meets female ``(i + k) % n`` for ``2 * per_occupation`` seeded offsets ``k``: one
    half gives the male-referent pairs, the other the female-referent pairs. So each occupation
    is the referent ``per_occupation`` times and the other occupation as often, and no two
    occupations meet twice.
    """
    males, females = list(MALE_STEREOTYPED), list(FEMALE_STEREOTYPED)
    rng.shuffle(males)
    rng.shuffle(females)
    n = len(males)
    offsets = rng.sample(range(n), 2 * per_occupation)
    male_ref = [(males[i], females[(i + k) % n]) for k in offsets[:per_occupation] for i in range(n)]
    female_ref = [(females[(i + k) % n], males[i]) for k in offsets[per_occupation:] for i in range(n)]
    return male_ref, female_ref


def render(frame: Frame, referent: str, other: str) -> tuple[str, tuple[str, ...]]:
    """The sentence text and its pronouns."""
    x, y = (referent, other) if frame.referent == "x" else (other, referent)
    slot = "refl" if "{refl}" in frame.template else "obj"
    text = frame.template.format(x=x, y=y, **FORMS)
    return text[0].upper() + text[1:], (FORMS[slot],)


def build_sentences(seed: int = SEED) -> list[ProbeSentence]:
    """All sentences: each frame ``USES_PER_FRAME`` times, half with each referent group."""
    rng = random.Random(seed)
    half = USES_PER_FRAME // 2
    count = len(FRAMES) * half  # pairs in each referent group
    n = len(MALE_STEREOTYPED)
    if count % n:
        raise ValueError(f"{count} pairs per referent group do not spread evenly over {n} occupations")
    male_ref, female_ref = occupation_pairs(rng, count // n)
    rng.shuffle(male_ref)
    rng.shuffle(female_ref)
    jobs = [
        (frame, pair)
        for at, frame in enumerate(FRAMES)
        for pair in male_ref[at * half : (at + 1) * half] + female_ref[at * half : (at + 1) * half]
    ]
    rng.shuffle(jobs)
    sentences: list[ProbeSentence] = []
    for frame, (referent, other) in jobs:
        line = len(sentences) + 1
        text, pronouns = render(frame, referent, other)
        sentences.append(ProbeSentence(
            sentence_id=f"builtin-they/{line:04d}", text=text, referent=referent, other=other,
            pronouns=pronouns, gender="neutral", stereotype=None, source="builtin-they",
            split=None, line=line, wino_type=None,
        ))
    return sentences


def main(argv: list[str] | None = None) -> int:
    return generator_main(argv, __doc__.splitlines()[0], OUTPUT, build_sentences, Path(__file__).name)


if __name__ == "__main__":
    raise SystemExit(main())
