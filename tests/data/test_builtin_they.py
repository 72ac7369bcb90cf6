"""The built-in singular-they set: balance, labels, reproducibility, and distance from WinoBias/Winogender."""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from collections import Counter
from pathlib import Path

import pytest

from fairness_callback.data import builtin_they
from fairness_callback.data.occupations import OCCUPATIONS, stereotyped_gender
from fairness_callback.data.sentence import ProbeSentence, ProbeSet, pronoun_gender

REPO = Path(__file__).resolve().parents[2]
JSONL = REPO / "fairness_callback" / "data" / builtin_they.BUILTIN_THEY_FILE


@pytest.fixture(scope="module")
def probes() -> ProbeSet:
    return ProbeSet.builtin_they()


@pytest.fixture(scope="module")
def generator():
    path = REPO / "tools" / "make_builtin_they_set.py"
    spec = importlib.util.spec_from_file_location("make_builtin_they_set", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop(spec.name, None)


def _at(text: str, occupation: str) -> int:
    match = re.search(rf"\bthe {re.escape(occupation)}\b", text, re.IGNORECASE)
    assert match is not None, (text, occupation)
    return match.start()


def _frame_of(sentence: ProbeSentence, frames) -> int:
    """The index of the one frame that renders this sentence."""
    hits = []
    for index, frame in enumerate(frames):
        x, y = (sentence.referent, sentence.other) if frame.referent == "x" else (sentence.other, sentence.referent)
        text = frame.template.format(x=x, y=y, obj="them", refl="themselves")
        if text[0].upper() + text[1:] == sentence.text:
            hits.append(index)
    assert len(hits) == 1, (sentence.sentence_id, hits)
    return hits[0]


def test_labels_and_fields(probes: ProbeSet) -> None:
    assert 200 <= len(probes) <= 300 and probes.name == "builtin-they"
    assert probes.counts() == {"neutral": len(probes), "unlabelled": len(probes)}
    for number, s in enumerate(probes, start=1):
        assert (s.sentence_id, s.line) == (f"builtin-they/{number:04d}", number)
        assert (s.gender, s.stereotype, s.source, s.split, s.wino_type) == ("neutral", None, "builtin-they", None, None)
        assert s.pronouns in (("them",), ("themselves",))
        assert [w for w in re.findall(r"[a-z]+", s.text.lower()) if pronoun_gender(w)] == list(s.pronouns)
        assert {stereotyped_gender(s.referent), stereotyped_gender(s.other)} == {"male", "female"}
        others = [o for o in OCCUPATIONS if o not in (s.referent, s.other) and re.search(rf"\b{re.escape(o)}\b", s.text)]
        assert not others, (s.sentence_id, others)
        assert s.text[0].isupper() and s.text.endswith(".") and "[" not in s.text


def test_balance(probes: ProbeSet, generator) -> None:
    n = len(probes)
    group = Counter(stereotyped_gender(s.referent) for s in probes)
    assert group == {"male": n // 2, "female": n // 2}
    first = Counter((stereotyped_gender(s.referent), _at(s.text, s.referent) < _at(s.text, s.other)) for s in probes)
    assert set(first.values()) == {n // 4}
    assert Counter(s.pronouns for s in probes) == {("them",): n // 2, ("themselves",): n // 2}
    as_referent, as_other = Counter(s.referent for s in probes), Counter(s.other for s in probes)
    assert set(as_referent) == set(as_other) == set(OCCUPATIONS)
    assert set(as_referent.values()) == set(as_other.values()) == {n // len(OCCUPATIONS)}
    pairs = Counter(frozenset((s.referent, s.other)) for s in probes)
    assert max(pairs.values()) == 1
    uses = Counter((_frame_of(s, generator.FRAMES), stereotyped_gender(s.referent)) for s in probes)
    assert len(uses) == 2 * len(generator.FRAMES) and set(uses.values()) == {generator.USES_PER_FRAME // 2}
    # the frame's declared referent slot is where the referent really is
    for s in probes:
        frame = generator.FRAMES[_frame_of(s, generator.FRAMES)]
        assert (frame.referent == "x") == (_at(s.text, s.referent) < _at(s.text, s.other)), s.sentence_id


def test_pronouns_sit_where_syntax_fixes_them(generator) -> None:
    """A reflexive's clause has the referent as subject; an object pronoun's clause has the other."""
    for frame in generator.FRAMES:
        (clause,) = [part for part in frame.template.split(", ") if "{obj}" in part or "{refl}" in part]
        match = re.match(r"(?:The|the) \{([xy])\} ", clause)
        assert match is not None, frame.template
        subject = match.group(1)
        if "{refl}" in clause:
            assert subject == frame.referent, frame.template
        else:
            assert subject != frame.referent, frame.template


def test_texts_are_unique(probes: ProbeSet) -> None:
    assert len({s.text for s in probes}) == len(probes)


def test_jsonl_matches_generator(generator) -> None:
    assert JSONL.read_text(encoding="utf-8") == generator.render_jsonl(generator.build_sentences())


def test_malformed_line_names_file_and_line(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    lines = JSONL.read_text(encoding="utf-8").splitlines()
    broken = tmp_path / builtin_they.BUILTIN_THEY_FILE
    from fairness_callback.data import builtin

    monkeypatch.setattr(builtin, "files", lambda package: tmp_path)  # the package-data reader both sets share
    broken.write_text("\n".join(lines[:2] + ['{"text": "truncated"'] + lines[3:]) + "\n", encoding="utf-8")
    with pytest.raises(ValueError, match=rf"{re.escape(builtin_they.BUILTIN_THEY_FILE)}:3:"):
        builtin_they.load_builtin_they()
    for field, value, message in [
        ("stereotype", "pro", "stereotype should be null"),
        ("gender", "male", "gender should be 'neutral'"),
        ("pronouns", ["him"], "are not the text's singular-they pronouns"),
        ("source", "builtin", "expected source 'builtin-they'"),
        ("other", "clerk" if "clerk" not in lines[0] else "cashier", "does not mention"),
    ]:
        record = json.loads(lines[0])
        record[field] = value
        broken.write_text(json.dumps(record) + "\n", encoding="utf-8")
        with pytest.raises(ValueError, match=rf":1: .*{re.escape(message)}"):
            builtin_they.load_builtin_they()


def _mask(text: str, names: list[str]) -> str:
    """Lower-cased words with the given occupations -> X and personal pronouns -> P."""
    text = text.lower()
    for name in sorted(names, key=len, reverse=True):
        text = re.sub(rf"\b{re.escape(name.lower())}\b", "X", text)
    words = re.findall(r"[a-z]+|X", text)
    return " ".join("P" if pronoun_gender(w) else w for w in words)


def test_no_sentence_or_frame_from_winogender(probes: ProbeSet, winogender_dir: Path) -> None:
    templates = set()
    for raw in (winogender_dir / "templates.tsv").read_text(encoding="utf-8").splitlines()[1:]:
        sentence = raw.split("\t")[3]
        sentence = re.sub(r"\$(NOM|POSS|ACC)_PRONOUN", "they", sentence)
        templates.add(_mask(sentence.replace("$OCCUPATION", "X").replace("$PARTICIPANT", "X"), []))
    sentences = {
        " ".join(re.findall(r"[a-z]+", raw.split("\t")[1].lower()))
        for raw in (winogender_dir / "all_sentences.tsv").read_text(encoding="utf-8").splitlines()[1:]
    }
    assert len(templates) > 100 and len(sentences) > 700
    ours = {s.sentence_id: _mask(s.text, [s.referent, s.other]) for s in probes}
    assert not [i for i, masked in ours.items() if masked in templates]
    assert not [s.sentence_id for s in probes if " ".join(re.findall(r"[a-z]+", s.text.lower())) in sentences]


def test_no_sentence_or_frame_from_winobias(probes: ProbeSet, winobias_dir: Path) -> None:
    official = set()
    for path in winobias_dir.glob("*_stereotyped_type*.txt.*"):
        for raw in path.read_text(encoding="utf-8").splitlines():
            official.add(_mask(re.sub(r"^\d+ ", "", raw).replace("[", "").replace("]", ""), list(OCCUPATIONS)))
    assert len(official) > 1000
    assert not [s.sentence_id for s in probes if _mask(s.text, list(OCCUPATIONS)) in official]


def test_documentation_states_the_counts(probes: ProbeSet, generator) -> None:
    doc = (REPO / "fairness_callback" / "data" / "BUILTIN_THEY.md").read_text(encoding="utf-8")
    n = len(probes)
    assert "NOT WinoBias and NOT Winogender" in doc
    assert f"| sentences | {n} |" in doc and f"| gender | {n} neutral |" in doc
    assert f"| male- / female-stereotyped referents | {n // 2} / {n // 2} |" in doc
    assert f"There are {len(generator.FRAMES)} frames." in doc
    assert f"SEED = {generator.SEED}" in doc
