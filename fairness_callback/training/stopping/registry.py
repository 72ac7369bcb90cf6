"""Stop rules by name: ``register_stop_rule`` and the ``--stop-rule "rule=NAME,ARG=VALUE,..."`` texts.

A rule class registered under a name is what ``--stop-rule``, ``report --stop-rule``, the demo's
``stop_rule`` and ``benchmarks/stop_rules.py`` build from a text. A text without ``rule=`` is the
default rule's (:data:`DEFAULT_RULE`), so ``"patience=3,min_delta=0.01"`` reads as it always did.
"""

from __future__ import annotations

import inspect
import types
import typing
from collections.abc import Callable
from typing import Any, Literal, TypeVar, Union

__all__ = ["DEFAULT_RULE", "make_stop_rule", "parse_stop_rule", "register_stop_rule", "stop_rule_class", "stop_rule_names"]

#: The rule a text without ``rule=`` names, and the one ``FairnessEarlyStopping()`` is.
DEFAULT_RULE = "best"

_RULES: dict[str, type] = {}
R = TypeVar("R", bound=type)


def register_stop_rule(name: str) -> Callable[[R], R]:
    """Class decorator: the rule class is built by ``--stop-rule "rule=<name>,..."`` (its ``name``)."""

    def register(cls: R) -> R:
        if name in _RULES and _RULES[name] is not cls:
            raise ValueError(f"stop rule {name!r} is already registered ({_RULES[name].__qualname__})")
        _RULES[name] = cls
        cls.name = name  # type: ignore[attr-defined]
        return cls

    return register


def stop_rule_names() -> list[str]:
    """Every registered rule's name."""
    return sorted(_RULES)


def stop_rule_class(name: str) -> type:
    """The class registered as ``name``; ValueError naming the known rules."""
    try:
        return _RULES[name]
    except KeyError:
        raise ValueError(f"unknown stop rule {name!r}; known: {', '.join(stop_rule_names())}") from None


def make_stop_rule(name: str = DEFAULT_RULE, **arguments: Any) -> Any:
    """The rule ``name`` built with ``arguments`` (the demo's ``stop_rule`` dict: ``{"rule": "cusum", ...}``)."""
    return stop_rule_class(name)(**arguments)


def parse_stop_rule(text: str, default_monitor: str = "jsdp/gap") -> Any:
    """``"rule=cusum,threshold=5"`` or ``"patience=3,min_delta=0.01"`` (the default rule) -> the rule;
    every other argument its default, ``monitor`` ``default_monitor`` unless given.

    Raises ValueError naming the text, the field at fault and the arguments the rule takes.
    """
    fields = [f.strip() for f in text.split(",") if f.strip()]
    name = DEFAULT_RULE
    for field in fields:
        key, sep, raw = field.partition("=")
        if sep and key.strip() == "rule":
            name = raw.strip()
    try:
        cls = stop_rule_class(name)
    except ValueError as error:
        raise ValueError(f"--stop-rule {text!r}: {error}") from None
    parameters = _parameters(cls)
    hints = typing.get_type_hints(cls.__init__)  # type: ignore[misc]  # the class, not an instance
    kwargs: dict[str, Any] = {"monitor": default_monitor}
    for field in fields:
        key, sep, raw = field.partition("=")
        key, raw = key.strip(), raw.strip()
        if key == "rule":
            continue
        if not sep or key not in parameters:
            raise ValueError(
                f"--stop-rule {text!r}: {field!r} is not NAME=VALUE with NAME 'rule' or an argument of rule "
                f"{name!r}: {', '.join(parameters)}"
            )
        kwargs[key] = _value(hints.get(key, Any), parameters[key].default, raw, text, key)
    try:
        return cls(**kwargs)
    except ValueError as error:
        raise ValueError(f"--stop-rule {text!r}: {error}") from None


def _parameters(cls: type) -> dict[str, inspect.Parameter]:
    return {name: p for name, p in inspect.signature(cls).parameters.items() if p.kind is not p.VAR_KEYWORD}


def _value(hint: Any, default: Any, raw: str, text: str, name: str) -> Any:
    """``raw`` as the argument's type (its type hint, else its default's); ``none`` for ``... | None``;
    one of the choices of a ``Literal``."""
    union = typing.get_origin(hint) in (Union, types.UnionType)
    choices = typing.get_args(hint) if union else (hint,)
    optional = type(None) in choices
    if optional and raw.lower() == "none":
        return None
    kinds = [kind for kind in choices if kind is not type(None)]
    kind = kinds[0] if len(kinds) == 1 else Any
    if kind is Any and isinstance(default, (bool, int, float)):
        kind = type(default)
    or_none = " or none" if optional else ""
    if typing.get_origin(kind) is Literal:
        allowed = typing.get_args(kind)
        if raw not in allowed:
            raise ValueError(f"--stop-rule {text!r}: {name}={raw!r} is not one of {', '.join(map(str, allowed))}{or_none}")
        return raw
    try:
        if kind is bool:
            if raw.lower() not in ("true", "false", "1", "0"):
                raise ValueError
            return raw.lower() in ("true", "1")
        if kind is int:
            return int(raw)
        if kind is float:  # an int where a float is asked for is a float
            return float(raw)
    except ValueError:
        spelled = "true or false" if kind is bool else kind.__name__
        raise ValueError(f"--stop-rule {text!r}: {name}={raw!r} is not {spelled}{or_none}") from None
    return raw
