"""``--model-factory replay_factory:tiny_model`` for the multi-process replay tests: the tests' tiny
GPT-NeoX, and, when ``REPLAY_KILL_RANK`` and ``REPLAY_KILL_AT_CALL`` are set, a hard death of
that rank at that call (``os._exit``: no cleanup, as a killed process or a lost node)."""

from __future__ import annotations

import functools
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from support import make_model, make_tokenizer  # noqa: E402

_calls = 0


@functools.cache
def _vocab() -> object:
    return make_tokenizer()


def tiny_model():
    global _calls
    _calls += 1
    if os.environ.get("RANK") == os.environ.get("REPLAY_KILL_RANK") and str(_calls) == os.environ.get("REPLAY_KILL_AT_CALL"):
        os._exit(17)
    return make_model(_vocab())
