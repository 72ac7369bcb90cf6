"""The probe: sentences -> prompts -> tokens (once) -> model scores -> metrics -> :class:`ProbeResult`.

Framework-free: nothing here imports a training framework. :mod:`.prompts` (:mod:`.tasks`: a task
as data; :mod:`.item_kinds`: each kind of item builds its prompts) -> :mod:`.encoding` (tokens,
once; :mod:`.packing` the token trees) -> :mod:`.scoring` (model in memory; the one place that picks
the path) -> :mod:`.metrics` -> :mod:`.fairness_probe` (:mod:`.suite`: several probes;
:mod:`.faults`, :mod:`.growth`, :mod:`.score_state` beside it).
"""

from .fairness_probe import (
    PREFIX_SHARING,
    FairnessProbe,
    Normalize,
    ProbeResult,
    fixed_subset,
    item_id,
    preserved_state,
)

__all__ = [
    "PREFIX_SHARING",
    "FairnessProbe",
    "Normalize",
    "ProbeResult",
    "fixed_subset",
    "item_id",
    "preserved_state",
]
