"""The callbacks' arguments as a configuration block: what the no-code paths read.

An axolotl YAML's ``fairness:`` block (:mod:`fairness_callback.integrations.axolotl`) and the
file that ``FAIRNESS_CALLBACK_CONFIG`` names for every Lightning ``Trainer``
(:mod:`fairness_callback.integrations.lightning_entry`) hold the same keys; :class:`FairnessConfig`
checks them (a wrong key or value is a :class:`ConfigError` naming it, and the file and line
where there is one) and builds the probe and the callback's arguments from them::

    every_n_steps: 200
    probe_set: winobias                 # a registered set's name, or {name: winobias, directory: DIR}
    max_prompts: 200
    early_stopping: true                # or a rule: "rule=cusum,threshold=5" / {rule: cusum, threshold: 5}
    alerts: {gap_level: 0.1}

The keys are :data:`KEYS`; each is the callbacks' argument of that name (documented in
:class:`~fairness_callback.FairnessTracker` and :class:`~fairness_callback.FairnessProbe`).
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..data.registry import UnknownProbeSetError, probe_set, probe_set_names
from ..data.sentence import ProbeSet
from ..probe import FairnessProbe
from ..probe.fairness_probe import DEFAULT_SEEDS, PREFIX_SHARING
from ..training.stopping import StopRule
from ..training.stopping.registry import DEFAULT_RULE, parse_stop_rule

__all__ = ["ConfigError", "FairnessConfig", "KEYS", "load_config_file"]

#: Every key of a configuration block, with what it takes (for errors and docs/guide.md's table).
KEYS: dict[str, str] = {
    "every_n_steps": "a positive integer (default 500)",
    "probe_set": "a registered probe set's name, or a mapping {name: NAME, OPTION: VALUE} (e.g. directory)",
    "probes": "a mapping {probe name: probe set} for several probes at once (instead of probe_set)",
    "max_prompts": "a positive integer: probe a fixed subset of whole sentences",
    "batch_size": "a positive integer (default 64)",
    "seeds": "a list of integers (default [0, 1, 2, 3, 4])",
    "prefix_sharing": f"one of {', '.join(PREFIX_SHARING)} (default auto)",
    "tokenizer": "a tokenizer path or hub id (default: the trainer's or the module's tokenizer)",
    "early_stopping": f"true (the {DEFAULT_RULE!r} rule), false, a rule text 'rule=NAME,ARG=VALUE' or a mapping {{rule: NAME, ARG: VALUE}}",
    "probe_at_start": "true or false (default true)",
    "history_path": "a file path (default: fairness_history.jsonl in the run's output folder)",
    "on_error": "warn or raise (default warn)",
    "log_all_metrics": "true or false (default false)",
    "probe_budget": "a fraction of training time, e.g. 0.05 (default: none)",
    "name": "a name telling this callback apart from another in the same trainer",
    "model_attr": "Lightning: the LightningModule attribute holding the causal LM (default model)",
    "alerts": "a mapping of the Alerts arguments (on_alert, gap_level, on_failure, on_stop, min_interval_s)",
}


class ConfigError(ValueError):
    """A configuration key or value the callbacks cannot use; the message names it (and its file and line)."""


@dataclass(frozen=True)
class FairnessConfig:
    """A checked configuration block (see the module docstring); :meth:`from_mapping` builds it."""

    every_n_steps: int = 500
    probe_set: str | dict[str, Any] | None = None
    probes: dict[str, str | dict[str, Any]] | None = None
    max_prompts: int | None = None
    batch_size: int = 64
    seeds: tuple[int, ...] = DEFAULT_SEEDS
    prefix_sharing: str = "auto"
    tokenizer: str | None = None
    early_stopping: bool | str | dict[str, Any] = False
    probe_at_start: bool = True
    history_path: str | None = None
    on_error: str = "warn"
    log_all_metrics: bool = False
    probe_budget: float | None = None
    name: str | None = None
    model_attr: str = "model"
    alerts: dict[str, Any] | None = None
    #: Where the block came from, for errors: ``"fairness"`` (an axolotl key), a file path.
    source: str = field(default="config", compare=False)

    @classmethod
    def from_mapping(cls, mapping: Any, source: str = "config", lines: Mapping[str, int] | None = None) -> FairnessConfig:
        """The configuration of ``mapping``; :class:`ConfigError` naming ``source``, the key (and its
        line, from ``lines``) for an unknown key or a value of the wrong type."""

        def where(key: str) -> str:
            line = (lines or {}).get(key)
            return f"{source}, line {line}: {key}" if line is not None else f"{source}.{key}"

        if mapping is None:
            mapping = {}
        if not isinstance(mapping, Mapping):
            raise ConfigError(f"{source}: expected a mapping of the keys {', '.join(KEYS)}, got {type(mapping).__name__}")
        values: dict[str, Any] = {}
        for key, value in mapping.items():
            if key not in KEYS:
                close = difflib.get_close_matches(str(key), KEYS, n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                raise ConfigError(f"{where(str(key))}: unknown key{hint} The keys are: {', '.join(KEYS)}")
            if value is None:
                continue
            values[key] = _check(key, value, where(key))
        if "probe_set" in values and "probes" in values:
            raise ConfigError(f"{source}: give probe_set or probes, not both")
        config = cls(**values, source=source)
        if config.alerts is not None:
            config._build_alerts(where("alerts"))
        config._build_rule(where("early_stopping"))
        return config

    # -- what the callbacks get ---------------------------------------------------------------
    def callback_kwargs(self) -> dict[str, Any]:
        """The arguments every callback takes (the probe is built later, from the tokenizer: :meth:`build_probes`)."""
        kwargs: dict[str, Any] = {
            "every_n_steps": self.every_n_steps,
            "early_stopping": self._build_rule(f"{self.source}.early_stopping"),
            "probe_at_start": self.probe_at_start,
            "history_path": self.history_path,
            "on_error": self.on_error,
            "log_all_metrics": self.log_all_metrics,
            "probe_budget": self.probe_budget,
            "name": self.name,
        }
        if self.alerts is not None:
            kwargs["alerts"] = self._build_alerts(f"{self.source}.alerts")
        return kwargs

    def build_probes(self, tokenizer: Any) -> dict[str, Any]:
        """``{"probe": FairnessProbe}`` or ``{"probes": {name: FairnessProbe}}`` for ``tokenizer``
        (this block's ``tokenizer`` when it names one); the sets are loaded here, so a missing
        directory is a ConfigError naming the key."""
        tokenizer = self.tokenizer if self.tokenizer is not None else tokenizer
        if tokenizer is None:
            raise ConfigError(
                f"{self.source}: no tokenizer to build the probe with: give the key 'tokenizer', "
                "or a trainer / LightningModule / datamodule that has one"
            )
        options = {
            "batch_size": self.batch_size,
            "seeds": self.seeds,
            "prefix_sharing": self.prefix_sharing,
            "max_prompts": self.max_prompts,
        }
        if self.probes:
            return {
                "probes": {
                    name: FairnessProbe(tokenizer, self._load(spec, f"{self.source}.probes.{name}"), **options)  # type: ignore[arg-type]
                    for name, spec in self.probes.items()
                }
            }
        chosen = self._load(self.probe_set, f"{self.source}.probe_set") if self.probe_set is not None else None
        return {"probe": FairnessProbe(tokenizer, chosen, **options)}  # type: ignore[arg-type]

    # -- helpers --------------------------------------------------------------------------------
    @staticmethod
    def _load(spec: str | Mapping[str, Any], where: str) -> ProbeSet:
        name, options = (spec, {}) if isinstance(spec, str) else (spec["name"], {k: v for k, v in spec.items() if k != "name"})
        try:
            return probe_set(name, **options)
        except (UnknownProbeSetError, TypeError, ValueError, OSError) as error:
            raise ConfigError(f"{where}: {error}") from None

    def _build_rule(self, where: str) -> StopRule | None:
        value = self.early_stopping
        if value is False:
            return None
        if value is True:
            text = f"rule={DEFAULT_RULE}"
        elif isinstance(value, str):
            text = value
        else:
            text = ",".join(f"{k}={_text(v)}" for k, v in value.items())
        try:
            return parse_stop_rule(text)
        except ValueError as error:
            raise ConfigError(f"{where}: {error}") from None

    def _build_alerts(self, where: str) -> Any:
        from ..training.alerts import Alerts

        try:
            return Alerts(**(self.alerts or {}))
        except (TypeError, ValueError, ImportError) as error:
            raise ConfigError(f"{where}: {error}") from None


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    return "none" if value is None else str(value)


def _check(key: str, value: Any, where: str) -> Any:
    """``value`` as the key takes it; ConfigError naming ``where`` otherwise."""

    def wrong(expected: str) -> ConfigError:
        return ConfigError(f"{where}: expected {expected}, got {value!r}")

    if key in ("every_n_steps", "max_prompts", "batch_size"):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise wrong("a positive integer")
        return value
    if key in ("probe_at_start", "log_all_metrics"):
        if not isinstance(value, bool):
            raise wrong("true or false")
        return value
    if key == "seeds":
        if (
            not isinstance(value, (list, tuple))
            or not value
            or not all(isinstance(s, int) and not isinstance(s, bool) for s in value)
        ):
            raise wrong("a non-empty list of integers")
        return tuple(value)
    if key == "prefix_sharing":
        if value not in PREFIX_SHARING:
            raise wrong(f"one of {', '.join(PREFIX_SHARING)}")
        return value
    if key == "on_error":
        if value not in ("warn", "raise"):
            raise wrong("warn or raise")
        return value
    if key == "probe_budget":
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 1:
            raise wrong("a fraction between 0 and 1")
        return float(value)
    if key in ("tokenizer", "history_path", "name", "model_attr"):
        if not isinstance(value, (str, os.PathLike)) or not str(value):
            raise wrong("a non-empty string")
        return str(value)
    if key == "early_stopping":
        if not isinstance(value, (bool, str, Mapping)):
            raise wrong("true, false, a rule text or a mapping")
        return dict(value) if isinstance(value, Mapping) else value
    if key == "alerts":
        if not isinstance(value, Mapping):
            raise wrong("a mapping")
        return dict(value)
    if key == "probe_set":
        return _check_set(value, where)
    if key == "probes":
        if not isinstance(value, Mapping) or not value:
            raise wrong("a non-empty mapping {probe name: probe set}")
        return {str(name): _check_set(spec, f"{where}.{name}") for name, spec in value.items()}
    raise AssertionError(key)  # every key of KEYS is checked above


def _check_set(value: Any, where: str) -> str | dict[str, Any]:
    if isinstance(value, Mapping):
        if not isinstance(value.get("name"), str):
            raise ConfigError(f"{where}: a probe set mapping needs its 'name' (one of {', '.join(probe_set_names())})")
        name, spec = value["name"], dict(value)
    elif isinstance(value, str):
        name, spec = value, value  # type: ignore[assignment]
    else:
        raise ConfigError(f"{where}: expected a probe set's name or a mapping {{name: NAME, ...}}, got {value!r}")
    if name not in probe_set_names():
        raise ConfigError(f"{where}: unknown probe set {name!r}; registered: {', '.join(probe_set_names())}")
    return spec


def load_config_file(path: str | os.PathLike) -> FairnessConfig:
    """The configuration in the YAML file ``path`` (its top-level keys are :data:`KEYS`); a
    ConfigError names the file and the line of a wrong key or value."""
    import yaml

    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigError(f"{path}: cannot be read ({error.strerror or error})") from None
    try:
        node = yaml.compose(text)
        mapping = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML: {error}") from None
    lines: dict[str, int] = {}
    if isinstance(node, yaml.MappingNode):
        lines = {str(key.value): key.start_mark.line + 1 for key, _ in node.value}
    return FairnessConfig.from_mapping(mapping, source=str(path), lines=lines)
