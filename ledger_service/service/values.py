"""Small helpers for validating command fields on construction."""

from __future__ import annotations

from enum import Enum
from typing import TypeVar

from ledger_service.domain.errors import InvalidArgument

E = TypeVar("E", bound=Enum)


def parse_enum(enum: type[E], value: object, name: str) -> E:
    try:
        return enum(value.value if isinstance(value, Enum) else str(value))
    except ValueError:
        choices = ", ".join(str(member.value) for member in enum)
        raise InvalidArgument(f"{name} must be one of {choices}, got {value!r}") from None


def set_field(command: object, name: str, value: object) -> None:
    """Replace a field of a frozen command with its validated, canonical value (in
    ``__post_init__`` only: a command is immutable once built)."""
    object.__setattr__(command, name, value)
