"""Typed commands: validated on construction, fingerprinted from their own fields.

The fingerprints must equal what the first release computed from its hand-written request
dicts, so an idempotency key recorded before the service layer still replays its result
instead of answering IDEMPOTENCY_CONFLICT after an upgrade. The legacy formula and request
shapes below are copied from that release (``application.py`` at e6b244e), with the values the
HTTP API passes (money already formatted by the request models).
"""

from __future__ import annotations

import hashlib
import json
from decimal import Decimal
from uuid import uuid4

import pytest

from ledger_service.domain.errors import InvalidAmount, InvalidArgument
from ledger_service.domain.wallet import CreditBucket, CreditKind, PoolMode
from ledger_service.service.topups import (
    ApproveTopup,
    CancelTopup,
    MarkTopupPaid,
    RejectTopup,
    RequestTopup,
)
from ledger_service.service.transfers import TransferMoney
from ledger_service.service.wallets import (
    ConfigureWallet,
    CreditWallet,
    LinkSender,
    OpenWallet,
    UnlinkSender,
)

WHO = {"actor": "ops", "idempotency_key": "k1"}


def legacy_fingerprint(command: str, request: dict[str, object]) -> str:
    body = json.dumps({"command": command, **request}, sort_keys=True, default=str)
    return hashlib.sha256(body.encode()).hexdigest()


def test_open_wallet_fingerprint_is_the_first_releases() -> None:
    command = OpenWallet(
        company_id="acme",
        currency="USD",
        mode="per_sender",
        postpaid_limit="100.5",
        included_quota="0",
        rate_card={"marketing": "0.05"},
        pool_sender_id="w1",
        **WHO,
    )  # type: ignore[arg-type]
    assert command.fingerprint() == legacy_fingerprint(
        "open_wallet",
        {
            "company_id": "acme",
            "currency": "USD",
            "mode": "per_sender",
            "postpaid_limit": "100.5",
            "included_quota": "0",
            "rate_card": {"marketing": "0.05"},
            "pool_sender_id": "w1",
        },
    )


@pytest.mark.parametrize("command_type", [LinkSender, UnlinkSender])
def test_sender_fingerprints_are_the_first_releases(command_type: type[LinkSender]) -> None:
    command = command_type(company_id="acme", waba_id="w1", **WHO)
    assert command.fingerprint() == legacy_fingerprint(
        command.name, {"waba_id": "w1", "pool_sender_id": None}
    )


def test_configure_wallet_fingerprint_is_the_first_releases() -> None:
    sections = {
        "alerts": {
            "low_balance_threshold": None,
            "low_balance_percent": "40",
            "burn_limit_24h": "9",
        },
        "auto_topup": {
            "enabled": True,
            "trigger_balance": "-5",
            "amount": "100",
            "auto_approve": False,
        },
        "spending_caps": {"marketing": {"units": 2, "amount": None}},
        "cycle": None,
    }
    command = ConfigureWallet(
        company_id="acme", postpaid_limit="250", rate_card={"utility": "0.01"}, **sections, **WHO
    )
    assert command.fingerprint() == legacy_fingerprint(
        "configure_wallet",
        {
            "pool_sender_id": None,
            "postpaid_limit": "250",
            "included_quota": None,
            "rate_card": {"utility": "0.01"},
            **sections,
        },
    )


def test_credit_and_topup_fingerprints_are_the_first_releases() -> None:
    credit = CreditWallet(company_id="acme", amount="50", kind="grant", reference="seed", **WHO)
    assert credit.fingerprint() == legacy_fingerprint(
        "credit_wallet",
        {
            "amount": "50",
            "kind": "grant",
            "bucket": "prepaid",
            "reference": "seed",
            "pool_sender_id": None,
        },
    )
    request = RequestTopup(company_id="acme", amount="12.5", currency="USD", note="n", **WHO)
    assert request.fingerprint() == legacy_fingerprint(
        "request_topup",
        {"amount": "12.5", "currency": "USD", "note": "n", "pool_sender_id": None},
    )


def test_topup_step_fingerprints_are_the_first_releases() -> None:
    topup_id = uuid4()
    steps = [
        (ApproveTopup(topup_id=topup_id, **WHO), {}),
        (RejectTopup(topup_id=topup_id, reason="no", **WHO), {"reason": "no"}),
        (CancelTopup(topup_id=topup_id, **WHO), {"reason": ""}),
        (
            MarkTopupPaid(topup_id=topup_id, payment_reference="bank-1", **WHO),
            {"payment_reference": "bank-1"},
        ),
    ]
    for command, request in steps:
        expected = legacy_fingerprint(command.name, {"topup_id": str(topup_id), **request})
        assert command.fingerprint() == expected, command.name


def test_transfer_fingerprint_is_the_first_releases() -> None:
    command = TransferMoney(
        from_company_id="a", to_company_id="b", amount="50", commission_rate="0.1", **WHO
    )
    assert command.fingerprint() == legacy_fingerprint(
        "transfer",
        {
            "to_company_id": "b",
            "amount": "50",
            "commission_rate": "0.1",
            "commission_account": "commissions",
            "note": "",
        },
    )


def test_fingerprint_ignores_who_asked_but_not_what() -> None:
    base = RequestTopup(company_id="acme", amount=Decimal(5), currency="USD", **WHO)
    other_actor = RequestTopup(
        company_id="acme", amount=Decimal(5), currency="USD", actor="x", idempotency_key="k2"
    )
    other_amount = RequestTopup(company_id="acme", amount=Decimal(6), currency="USD", **WHO)
    assert base.fingerprint() == other_actor.fingerprint()
    assert base.fingerprint() != other_amount.fingerprint()


def test_commands_are_validated_and_canonical_on_construction() -> None:
    command = OpenWallet(
        company_id="acme", currency="USD", mode="shared", postpaid_limit="7.50", **WHO
    )
    assert command.mode is PoolMode.SHARED
    assert command.postpaid_limit == Decimal("7.5")
    credit = CreditWallet(
        company_id="a", amount="1", kind="refund", bucket="included", reference="r", **WHO
    )
    assert (credit.kind, credit.bucket) == (CreditKind.REFUND, CreditBucket.INCLUDED)
    with pytest.raises(InvalidAmount):
        RequestTopup(company_id="acme", amount="0", currency="USD", **WHO)
    with pytest.raises(InvalidArgument, match="only come from top-ups"):
        CreditWallet(company_id="a", amount="1", kind="topup", reference="r", **WHO)
    with pytest.raises(InvalidArgument, match="nothing to change"):
        ConfigureWallet(company_id="acme", **WHO)
    with pytest.raises(InvalidArgument, match="two different companies"):
        TransferMoney(from_company_id="a", to_company_id="a", amount=Decimal(1), **WHO)
    with pytest.raises(InvalidArgument, match="commission_rate"):
        TransferMoney(
            from_company_id="a",
            to_company_id="b",
            amount=Decimal(1),
            commission_rate=Decimal(1),
            **WHO,
        )


def test_commands_are_immutable() -> None:
    command = LinkSender(company_id="acme", waba_id="w1", **WHO)
    with pytest.raises(AttributeError):
        command.waba_id = "w2"  # type: ignore[misc]
