"""Deterministic aggregate ids and validated identifiers.

Wallets, sender registrations and invoice-number claims have ids derived from business keys, so
two writers racing to create the same one collide on the event store's primary key instead of
creating two. The company id stays the routing key everywhere (see DESIGN.md, "Scale-out").
"""

from __future__ import annotations

import re
from uuid import UUID, uuid5

from ledger_service.domain.errors import InvalidArgument

_NAMESPACE = UUID("7d3c2f4e-6a1b-5c8d-9e0f-1a2b3c4d5e6f")
_KEY_TEXT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,63}")


def check_key(value: object, field: str) -> str:
    """A company, sender or category id: 1-64 chars of letters, digits, ``. _ : -``."""
    if not isinstance(value, str) or not _KEY_TEXT.fullmatch(value):
        raise InvalidArgument(
            f"{field} must be 1-64 characters of letters, digits, '.', '_', ':' or '-' "
            f"starting with a letter or digit, got {value!r}"
        )
    return value


def wallet_id(company_id: str, pool_sender_id: str | None = None) -> UUID:
    """The company's shared pool, or (legacy ``per_sender`` mode) the pool of one sender."""
    if pool_sender_id is None:
        return uuid5(_NAMESPACE, f"wallet/{company_id}")
    return uuid5(_NAMESPACE, f"wallet/{company_id}/sender/{pool_sender_id}")


def sender_registration_id(waba_id: str) -> UUID:
    return uuid5(_NAMESPACE, f"sender/{waba_id}")


def invoice_claim_id(invoice_number: str) -> UUID:
    return uuid5(_NAMESPACE, f"invoice/{invoice_number}")


def console_sign_in_id(link_id: str) -> UUID:
    """The sign-in that used login link ``link_id``: a link can be used once."""
    return uuid5(_NAMESPACE, f"console-sign-in/{link_id}")


def topup_velocity_id(company_id: str) -> UUID:
    """The count of a company's recent top-up requests (risk review)."""
    return uuid5(_NAMESPACE, f"topup-velocity/{company_id}")
