"""Numeric task flags, checked in one place.

Tasks declare numeric flags with a `None` default, so invoke hands them over as strings
(typed `int` flags would make invoke raise a ValueError traceback on `--port abc`); the task
then parses each through these functions, which end it with one sentence on bad input.
"""
from __future__ import annotations

import math

from invoke.exceptions import Exit

MAX_PORT = 65535


def whole_number(value, flag: str, *, minimum: int | None = None, maximum: int | None = None) -> int | None:
    """`value` (a flag's string, an int from config, or None for "not given") as an int."""
    if value is None:
        return None
    if isinstance(value, bool):  # bool is an int subclass; a bare `--flag` is not a number
        raise Exit(f"{flag} needs a whole number.")
    try:
        number = value if isinstance(value, int) else int(str(value).strip())
    except ValueError:
        raise Exit(f"{flag} must be a whole number, got {value!r}.")
    if minimum is not None and maximum is not None and not minimum <= number <= maximum:
        raise Exit(f"{flag} must be between {minimum} and {maximum}, got {number}.")
    if minimum is not None and number < minimum:
        raise Exit(f"{flag} must be at least {minimum}, got {number}.")
    if maximum is not None and number > maximum:
        raise Exit(f"{flag} must be at most {maximum}, got {number}.")
    return number


def number(value, flag: str) -> float | None:
    """`value` (a flag's string, a number from config, or None for "not given") as a float.

    Only the parsing: nan and inf come back as they are, for a check that knows the flag's limits.
    """
    if value is None:
        return None
    if isinstance(value, bool):
        raise Exit(f"{flag} needs a number.")
    try:
        return float(value if isinstance(value, (int, float)) else str(value).strip())
    except ValueError:
        raise Exit(f"{flag} must be a number, got {value!r}.")


def positive_number(value, flag: str, *, maximum: float | None = None, of: str = "") -> float | None:
    """A finite float above 0 (and at most `maximum`), or None when not given.

    `of` names the unit in the message: "--lookback must be a positive number of seconds, got '0'."
    """
    parsed = number(value, flag)
    if parsed is None:
        return None
    if not (math.isfinite(parsed) and parsed > 0 and (maximum is None or parsed <= maximum)):
        most = "" if maximum is None else f" up to {maximum:g}"
        unit = f" of {of}" if of else ""
        raise Exit(f"{flag} must be a positive number{unit}{most}, got {value!r}.")
    return parsed


def port(value, flag: str) -> int | None:
    """A TCP port flag: a whole number from 1 to 65535, or None when not given."""
    return whole_number(value, flag, minimum=1, maximum=MAX_PORT)
