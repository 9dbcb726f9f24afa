"""ASVS 5.0 6.2.4 (4.0: 2.1.7): a new password is refused when it is one of the
most common passwords, the first an attacker tries.

The list is zxcvbn's: its ranked dictionary of the 30,000 most common
passwords (case-folded), of which the first `COMMON_PASSWORDS_REFUSED` are
refused. Only that dictionary is consulted, by one lookup, not zxcvbn's
whole strength estimate: the estimate costs milliseconds per call on short
passwords and over 100 ms on a 64-character one, in the event loop, on an
unauthenticated route.
"""

from zxcvbn.matching import RANKED_DICTIONARIES  # type: ignore[import-untyped]

COMMON_PASSWORDS_REFUSED = 10_000
# Password (lower case) -> rank, 1 for the most common. A KeyError here, at
# import, would mean that zxcvbn no longer ships the list: start-up fails.
RANKS: dict[str, int] = RANKED_DICTIONARIES["passwords"]


def is_common(password: str) -> bool:
    rank = RANKS.get(password.lower())
    return rank is not None and rank <= COMMON_PASSWORDS_REFUSED


def not_common(password: str) -> str:
    """The validator of new passwords (`schemas.NewPassword`): 422 for a common one."""
    if is_common(password):
        msg = f"is one of the {COMMON_PASSWORDS_REFUSED:,} most common passwords: choose another"
        raise ValueError(msg)
    return password
