"""Probe sentences: the official WinoBias files, the HF row format, and the built-in set."""

from .occupations import FEMALE_STEREOTYPED, MALE_STEREOTYPED, OCCUPATIONS
from .sentence import WINOBIAS_ENV, ProbeSentence, ProbeSet, pronoun_gender

__all__ = [
    "FEMALE_STEREOTYPED",
    "MALE_STEREOTYPED",
    "OCCUPATIONS",
    "WINOBIAS_ENV",
    "ProbeSentence",
    "ProbeSet",
    "pronoun_gender",
]
