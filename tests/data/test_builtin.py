"""The built-in probe set: balance, labels, wording, reproducibility, and distance from WinoBias."""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from collections import Counter
from pathlib import Path

import pytest

from fairness_callback.data import builtin
from fairness_callback.data.occupations import FEMALE_STEREOTYPED, MALE_STEREOTYPED, OCCUPATIONS
from fairness_callback.data.sentence import ProbeSentence, ProbeSet, pronoun_gender

REPO = Path(__file__).resolve().parents[2]
JSONL = REPO / "fairness_callback" / "data" / builtin.BUILTIN_FILE
PRONOUN_SWAP = {"he": "she", "him": "her", "his": "her", "himself": "herself"}


@pytest.fixture(scope="module")
def probes() -> ProbeSet:
    return ProbeSet.builtin()


def _words(text: str) -> list[str]:
    return re.findall(r"[A-Za-z]+", text.lower())


def _has_phrase(text: str, phrase: str) -> bool:
    return re.search(rf"\b{re.escape(phrase)}\b", text) is not None


def test_size_and_exact_balance(probes: ProbeSet) -> None:
    assert len(probes) >= 400
    assert probes.name == "builtin"
    counts = probes.counts()
    assert counts["male"] == counts["female"] == len(probes) // 2
    assert counts["pro"] == counts["anti"] == len(probes) // 2
    for group in (MALE_STEREOTYPED, FEMALE_STEREOTYPED):
        subset = [s for s in probes if s.referent in group]
        assert Counter(s.gender for s in subset) == {"male": len(subset) // 2, "female": len(subset) // 2}
        assert Counter(s.stereotype for s in subset) == {"pro": len(subset) // 2, "anti": len(subset) // 2}


def test_every_occupation_as_referent_and_other(probes: ProbeSet) -> None:
    as_referent = Counter(s.referent for s in probes)
    as_other = Counter(s.other for s in probes)
    assert set(as_referent) == set(as_other) == set(OCCUPATIONS)
    assert max(as_referent.values()) - min(as_referent.values()) <= 2
    assert max(as_other.values()) - min(as_other.values()) <= 2


def test_labels_agree_with_occupations_and_gender(probes: ProbeSet) -> None:
    for s in probes:
        referent_male = s.referent in MALE_STEREOTYPED
        assert referent_male != (s.other in MALE_STEREOTYPED), s.sentence_id  # one of each group
        expected = "pro" if (s.gender == "male") == referent_male else "anti"
        assert s.stereotype == expected, s.sentence_id
        assert {pronoun_gender(p) for p in s.pronouns} == {s.gender}, s.sentence_id
        assert (s.source, s.split, s.wino_type) == ("builtin", None, 2)


def test_text_mentions_occupations_and_pronouns(probes: ProbeSet) -> None:
    for number, s in enumerate(probes, start=1):
        assert s.sentence_id == f"builtin/{number:04d}" and s.line == number
        assert "[" not in s.text and "]" not in s.text and s.text == s.text.strip()
        assert s.text[0].isupper() and s.text.endswith(".")
        for phrase in (s.referent, s.other):
            assert _has_phrase(s.text, phrase), (s.sentence_id, phrase)
        others = [o for o in OCCUPATIONS if o not in (s.referent, s.other) and _has_phrase(s.text, o)]
        assert not others, (s.sentence_id, others)
        assert Counter(w for w in _words(s.text) if pronoun_gender(w)) == Counter(s.pronouns), s.sentence_id


def test_twins_differ_only_in_pronouns(probes: ProbeSet) -> None:
    assert len(probes) % 2 == 0
    for pro, anti in zip(probes[0::2], probes[1::2]):
        assert (pro.stereotype, anti.stereotype) == ("pro", "anti")
        assert (pro.referent, pro.other) == (anti.referent, anti.other) and pro.gender != anti.gender
        male, female = (pro, anti) if pro.gender == "male" else (anti, pro)
        assert [PRONOUN_SWAP.get(w, w) for w in _words(male.text)] == _words(female.text)
        assert re.sub(r"[a-z]+", "", male.text) == re.sub(r"[a-z]+", "", female.text)  # same punctuation
        assert [PRONOUN_SWAP[p] for p in male.pronouns] == list(female.pronouns)


def test_texts_are_unique(probes: ProbeSet) -> None:
    assert len({s.text for s in probes}) == len(probes)


def test_jsonl_matches_generator(monkeypatch: pytest.MonkeyPatch) -> None:
    spec = importlib.util.spec_from_file_location("make_builtin_probe_set", REPO / "tools" / "make_builtin_probe_set.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)  # dataclasses look their module up there
    spec.loader.exec_module(module)
    assert JSONL.read_text(encoding="utf-8") == module.render_jsonl(module.build_sentences())


def test_malformed_line_names_file_and_line(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    lines = JSONL.read_text(encoding="utf-8").splitlines()
    broken = tmp_path / builtin.BUILTIN_FILE
    broken.write_text("\n".join(lines[:2] + ['{"text": "truncated"'] + lines[3:]) + "\n", encoding="utf-8")
    monkeypatch.setattr(builtin, "files", lambda package: tmp_path)
    with pytest.raises(ValueError, match=rf"{re.escape(builtin.BUILTIN_FILE)}:3:"):
        builtin.load_builtin()
    record = ProbeSentence.from_dict(json.loads(lines[0])).to_dict()
    record["stereotype"] = "anti" if record["stereotype"] == "pro" else "pro"
    broken.write_text(json.dumps(record) + "\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r":1: .*stereotype"):
        builtin.load_builtin()


def test_no_sentence_is_a_winobias_sentence(probes: ProbeSet, winobias_dir: Path) -> None:
    def normalise(text: str) -> str:
        return " ".join(_words(text))

    official = set()
    for path in winobias_dir.glob("*_stereotyped_type*.txt.*"):
        for raw in path.read_text(encoding="utf-8").splitlines():
            official.add(normalise(re.sub(r"^\d+ ", "", raw).replace("[", "").replace("]", "")))
    assert len(official) > 1000
    copied = [s.sentence_id for s in probes if normalise(s.text) in official]
    assert not copied


def test_documentation_states_the_counts(probes: ProbeSet) -> None:
    doc = (REPO / "fairness_callback" / "data" / "BUILTIN.md").read_text(encoding="utf-8")
    assert "NOT WinoBias" in doc
    assert f"| sentences | {len(probes)} (" in doc
    assert f"| pronoun gender | {len(probes) // 2} male, {len(probes) // 2} female |" in doc
