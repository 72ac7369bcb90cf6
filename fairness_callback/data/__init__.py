"""Probe data: WinoBias (files and HF rows), Winogender, BBQ, and the built-in gender and they sets."""

from .bbq import BBQItem, BBQLoad, BBQUnmatched, load_bbq
from .builtin_they import load_builtin_they
from .occupations import FEMALE_STEREOTYPED, MALE_STEREOTYPED, OCCUPATIONS
from .sentence import (
    FEMALE_PRONOUNS,
    GENDERS,
    MALE_PRONOUNS,
    NEUTRAL_PRONOUNS,
    WINOBIAS_ENV,
    ProbeSentence,
    ProbeSet,
    pronoun_gender,
)
from .winogender import WinogenderLoad, load_winogender

__all__ = [
    "BBQItem",
    "BBQLoad",
    "BBQUnmatched",
    "FEMALE_PRONOUNS",
    "FEMALE_STEREOTYPED",
    "GENDERS",
    "MALE_PRONOUNS",
    "MALE_STEREOTYPED",
    "NEUTRAL_PRONOUNS",
    "OCCUPATIONS",
    "WINOBIAS_ENV",
    "ProbeSentence",
    "ProbeSet",
    "WinogenderLoad",
    "load_bbq",
    "load_builtin_they",
    "load_winogender",
    "pronoun_gender",
]
