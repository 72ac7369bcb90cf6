"""Winogender loader, singular-they genders in ProbeSentence, and WinoBias still refusing "they".

Counts are recomputed here from the raw files with ``csv``. On the published file (720 rows):
360 kept (120 male, 120 female, 120 neutral; 60 pro, 60 anti, 240 unlabelled) and 360 left out,
all with the bleached participant "someone".
"""

from __future__ import annotations

import csv
import re
import shutil
from collections import Counter
from pathlib import Path

import pytest

from fairness_callback.data import NEUTRAL_PRONOUNS, ProbeSentence, ProbeSet, pronoun_gender
from fairness_callback.data.winobias import WinoBiasFormatError, sentences_from_hf_rows
from fairness_callback.data.winogender import (
    SENTENCES_FILE,
    SOMEONE,
    STATS_FILE,
    WinogenderFormatError,
    load_winogender,
)


def _rows(directory: Path) -> list[dict]:
    with open(directory / SENTENCES_FILE, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle, delimiter="\t"))


def _stats(directory: Path) -> dict[str, float]:
    with open(directory / STATS_FILE, newline="", encoding="utf-8") as handle:
        return {row["occupation"]: float(row["bls_pct_female"]) for row in csv.DictReader(handle, delimiter="\t")}


# -- singular they in the data model ----------------------------------------------------------


@pytest.mark.parametrize("word", ["they", "Them", "their", "theirs", "themselves", "themself"])
def test_they_forms_are_neutral(word: str) -> None:
    assert pronoun_gender(word) == "neutral"
    assert word.lower() in NEUTRAL_PRONOUNS


def test_gendered_and_other_words_unchanged() -> None:
    assert [pronoun_gender(w) for w in ("he", "His", "she", "hers", "it", "we", "")] == [
        "male",
        "male",
        "female",
        "female",
        None,
        None,
        None,
    ]


def test_probe_sentence_accepts_neutral_only_as_a_third_gender() -> None:
    s = ProbeSentence("x/1", "The cook thanked the clerk and paid them.", "clerk", "cook", ("them",), "neutral")
    assert ProbeSentence.from_dict(s.to_dict()) == s
    assert ProbeSet([s]).counts() == {"neutral": 1, "unlabelled": 1}
    with pytest.raises(ValueError, match="gender must be one of"):
        ProbeSentence("x/2", "text", "clerk", "cook", ("them",), "nonbinary")  # type: ignore[arg-type]


def test_winobias_rows_still_reject_a_coreferent_they() -> None:
    row = {
        "document_id": "d",
        "tokens": ["The", "cook", "thanked", "the", "clerk", "and", "paid", "them", "."],
        "coreference_clusters": ["3", "4", "7", "7"],
    }
    with pytest.raises(WinoBiasFormatError, match="neither a gendered pronoun"):
        sentences_from_hf_rows([row])


def test_probe_set_constructor_is_backwards_compatible() -> None:
    s = ProbeSentence("x/1", "The cook thanked the clerk and paid her.", "clerk", "cook", ("her",), "female")
    assert ProbeSet([s]).left_out == {} and ProbeSet([s], "n").name == "n"
    assert ProbeSet([s], left_out={"r": 2}).left_out == {"r": 2}


# -- the real file ------------------------------------------------------------------------------


def test_counts_match_the_raw_file(winogender_dir: Path) -> None:
    rows = _rows(winogender_dir)
    stats = _stats(winogender_dir)
    parts = [row["sentid"].split(".") for row in rows]
    kept = [p for p in parts if p[1] != "someone"]
    load = load_winogender(winogender_dir)

    assert len(load.sentences) == len(kept) and len(load.sentences) + len(load.left_out) == len(rows)
    assert load.left_out_counts() == {SOMEONE: len(rows) - len(kept)}
    assert Counter(s.gender for s in load.sentences) == Counter(p[3] for p in kept)
    expected_labels = Counter()
    for occupation, _, answer, gender, _ in kept:
        if answer == "0" and gender != "neutral":
            stereotyped = "female" if stats[occupation] > 50 else "male"
            expected_labels["pro" if stereotyped == gender else "anti"] += 1
        else:
            expected_labels[None] += 1
    assert Counter(s.stereotype for s in load.sentences) == expected_labels
    # the left-out lines are exactly the "someone" rows (line = row index + 2: header is line 1)
    someone_lines = {at + 2 for at, p in enumerate(parts) if p[1] == "someone"}
    assert {line for _, line, _ in load.left_out} == someone_lines
    assert all(file.endswith(SENTENCES_FILE) for file, _, _ in load.left_out)


def test_every_sentence_matches_its_row(winogender_dir: Path) -> None:
    rows = _rows(winogender_dir)
    for s in load_winogender(winogender_dir).sentences:
        row = rows[s.line - 2]
        occupation, participant, answer, gender, _ = row["sentid"].split(".")
        assert s.sentence_id == "winogender/" + row["sentid"][: -len(".txt")]
        assert s.text == row["sentence"]
        assert (s.referent, s.other) == ((occupation, participant) if answer == "0" else (participant, occupation))
        assert s.gender == gender and (s.source, s.split, s.wino_type) == ("winogender", None, None)
        words = re.findall(r"[a-z]+", s.text.lower())
        assert list(s.pronouns) == [w for w in words if pronoun_gender(w)]
        assert {pronoun_gender(p) for p in s.pronouns} == {gender}


def test_hand_picked_sentences(winogender_dir: Path) -> None:
    probes = ProbeSet.from_winogender(winogender_dir)
    by_id = {s.sentence_id: s for s in probes}
    someone = sum(row["sentid"].split(".")[1] == "someone" for row in _rows(winogender_dir))
    assert probes.name == "winogender" and probes.left_out == {SOMEONE: someone}

    s = by_id["winogender/technician.customer.1.male"]
    assert (s.referent, s.other, s.pronouns, s.stereotype, s.line) == ("customer", "technician", ("he",), None, 2)
    # technician: 40.34% female (BLS) -> male-stereotyped; the pronoun refers to the technician
    assert by_id["winogender/technician.customer.0.male"].stereotype == "pro"
    assert by_id["winogender/technician.customer.0.female"].stereotype == "anti"
    assert by_id["winogender/technician.customer.0.neutral"].stereotype is None
    # nurse: 89.58% female -> female-stereotyped
    nurse = [s for s in probes if s.sentence_id.startswith("winogender/nurse.") and ".0." in s.sentence_id]
    assert {(s.gender, s.stereotype) for s in nurse} == {("female", "pro"), ("male", "anti"), ("neutral", None)}
    # "a student": the mention is kept without its article
    s = by_id["winogender/educator.student.1.neutral"]
    assert (s.referent, s.other, s.pronouns) == ("student", "educator", ("their",))
    assert not any(".someone." in s.sentence_id for s in probes)


def test_person_instead_of_someone_is_refused(winogender_dir: Path) -> None:
    with pytest.raises(ValueError, match="only 'exclude'"):
        load_winogender(winogender_dir, someone="person")  # type: ignore[arg-type]


def test_missing_files(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=SENTENCES_FILE):
        load_winogender(tmp_path)


# -- malformed copies ---------------------------------------------------------------------------


def _broken_copy(winogender_dir: Path, tmp_path: Path, line: int, replacement: str) -> Path:
    shutil.copy(winogender_dir / STATS_FILE, tmp_path / STATS_FILE)
    lines = (winogender_dir / SENTENCES_FILE).read_text(encoding="utf-8").splitlines()
    lines[line - 1] = replacement
    (tmp_path / SENTENCES_FILE).write_text("\n".join(lines) + "\n", encoding="utf-8")
    return tmp_path


@pytest.mark.parametrize(
    ("replacement", "message"),
    [
        ("technician.customer.1.male.txt", "expected 2 tab-separated columns, found 1"),
        ("a\tb\tc", "found 3"),
        ("technician.customer.1.male\tThe technician told the customer that he could pay.", "is not OCCUPATION"),
        ("technician.customer.2.male.txt\tThe technician told the customer that he could pay.", "ANSWER must be"),
        ("technician.customer.1.other.txt\tThe technician told the customer that xe could pay.", "unknown gender 'other'"),
        ("technician.customer.1.male.txt\tThe technician told the client that he could pay.", "participant 'the customer'"),
        ("technician.customer.1.male.txt\tThe mechanic told the customer that he could pay.", "occupation 'the technician'"),
        ("technician.customer.1.male.txt\tThe technician told the customer that she could pay.", "pronoun"),
        ("technician.customer.1.male.txt\tThe technician told the customer that it was paid.", "no pronoun"),
        ("plumberx.customer.1.male.txt\tThe plumberx told the customer that he could pay.", "no row in"),
        ("technician.customer.1.female.txt\tThe technician told the customer that she could pay.", "duplicate sentid"),
    ],
)
def test_malformed_line_names_file_and_line(winogender_dir: Path, tmp_path: Path, replacement: str, message: str) -> None:
    directory = _broken_copy(winogender_dir, tmp_path, 4 if "duplicate" in message else 2, replacement)
    line = 4 if "duplicate" in message else 2
    with pytest.raises(WinogenderFormatError, match=rf"{re.escape(SENTENCES_FILE)}, line {line}: .*{re.escape(message)}"):
        load_winogender(directory)


def test_bad_header_and_bad_stats(winogender_dir: Path, tmp_path: Path) -> None:
    directory = _broken_copy(winogender_dir, tmp_path, 1, "id\ttext")
    with pytest.raises(WinogenderFormatError, match=r"all_sentences\.tsv, line 1: expected the header"):
        load_winogender(directory)
    directory = _broken_copy(winogender_dir, tmp_path, 1, "sentid\tsentence")
    stats = (winogender_dir / STATS_FILE).read_text(encoding="utf-8").splitlines()
    stats[2] = stats[2].replace("59.7", "many")
    (directory / STATS_FILE).write_text("\n".join(stats) + "\n", encoding="utf-8")
    with pytest.raises(WinogenderFormatError, match=r"occupations-stats\.tsv, line 3: "):
        load_winogender(directory)
