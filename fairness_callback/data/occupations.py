"""The 40 occupations of WinoBias (Zhao et al., 2018), split by the gender that dominates them
in US labour statistics, as WinoBias lists them (``male_occupations.txt`` / ``female_occupations.txt``).
"""

__all__ = [
    "FEMALE_STEREOTYPED",
    "MALE_STEREOTYPED",
    "OCCUPATIONS",
    "stereotyped_gender",
]

MALE_STEREOTYPED: tuple[str, ...] = (
    "driver",
    "supervisor",
    "janitor",
    "cook",
    "mover",
    "laborer",
    "construction worker",
    "chief",
    "developer",
    "carpenter",
    "manager",
    "lawyer",
    "farmer",
    "salesperson",
    "physician",
    "guard",
    "analyst",
    "mechanic",
    "sheriff",
    "CEO",
)
FEMALE_STEREOTYPED: tuple[str, ...] = (
    "attendant",
    "cashier",
    "teacher",
    "nurse",
    "assistant",
    "secretary",
    "auditor",
    "cleaner",
    "receptionist",
    "clerk",
    "counselor",
    "designer",
    "hairdresser",
    "writer",
    "housekeeper",
    "baker",
    "accountant",
    "editor",
    "librarian",
    "tailor",
)
OCCUPATIONS: tuple[str, ...] = MALE_STEREOTYPED + FEMALE_STEREOTYPED


def stereotyped_gender(occupation: str) -> str | None:
    """'male' / 'female' if ``occupation`` is one of the 40, else None (case-insensitive)."""
    key = occupation.lower()
    if key in {o.lower() for o in MALE_STEREOTYPED}:
        return "male"
    if key in {o.lower() for o in FEMALE_STEREOTYPED}:
        return "female"
    return None
