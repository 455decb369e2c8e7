"""The ledger's error family.

Every error a caller can provoke is a ``LedgerError`` with a stable, machine-readable ``code``.
The HTTP layer maps these to statuses in exactly one module; the consumer maps them to
dead-letter codes. Library errors never leak past the application layer.
"""

from __future__ import annotations


class LedgerError(Exception):
    """Base of every error the ledger raises on purpose."""

    code = "LEDGER_ERROR"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidAmount(LedgerError):
    code = "INVALID_AMOUNT"


class InvalidArgument(LedgerError):
    code = "INVALID_ARGUMENT"


class CurrencyMismatch(LedgerError):
    code = "CURRENCY_MISMATCH"


class InsufficientFunds(LedgerError):
    code = "INSUFFICIENT_FUNDS"


class TransferLimitReached(LedgerError):
    """A tenant transfer beyond what its wallet may send today (its daily transfer limit)."""

    code = "TRANSFER_LIMIT_REACHED"


class InvalidTransition(LedgerError):
    code = "INVALID_TRANSITION"


class NotFound(LedgerError):
    code = "NOT_FOUND"


class WalletNotFound(NotFound):
    code = "WALLET_NOT_FOUND"


class TopupNotFound(NotFound):
    code = "TOPUP_NOT_FOUND"


class PackNotFound(NotFound):
    code = "PACK_NOT_FOUND"


class PackAlreadyExists(LedgerError):
    code = "PACK_ALREADY_EXISTS"


class PaymentProviderUnavailable(LedgerError):
    """The payment provider could not open a checkout (nothing was written)."""

    code = "PAYMENT_PROVIDER_UNAVAILABLE"


class PaymentOrderNotFound(NotFound):
    code = "PAYMENT_ORDER_NOT_FOUND"


class AdjustmentNotFound(NotFound):
    code = "ADJUSTMENT_NOT_FOUND"


class GrantNotFound(NotFound):
    code = "GRANT_NOT_FOUND"


class GrantAlreadyExists(LedgerError):
    """A grant with this reference was already issued to this wallet."""

    code = "GRANT_ALREADY_EXISTS"


class GrantClosed(InvalidTransition):
    """The grant has expired or was voided already."""

    code = "GRANT_CLOSED"


class HoldNotFound(NotFound):
    """No active hold with this id (unknown, or settled, released or expired already)."""

    code = "HOLD_NOT_FOUND"


class HoldConflict(LedgerError):
    """Another hold request for a reference that has an active hold."""

    code = "HOLD_CONFLICT"


class InsufficientAvailableBalance(LedgerError):
    """A hold (a request, unlike usage) that ``available`` does not cover."""

    code = "INSUFFICIENT_AVAILABLE_BALANCE"


class SpendingCapReached(LedgerError):
    code = "SPENDING_CAP_REACHED"


class UsageNotFound(NotFound):
    """No billed usage event with this (source, id) for this company."""

    code = "USAGE_NOT_FOUND"


class UsageNotRefundable(LedgerError):
    """The usage event is known but cannot be refunded (it charged nothing, or was recorded
    before refunds were tracked)."""

    code = "USAGE_NOT_REFUNDABLE"


class UsageAlreadyRefunded(LedgerError):
    code = "USAGE_ALREADY_REFUNDED"


class WalletAlreadyExists(LedgerError):
    code = "WALLET_ALREADY_EXISTS"


class SenderAlreadyLinked(LedgerError):
    code = "SENDER_ALREADY_LINKED"


class SenderNotLinked(LedgerError):
    code = "SENDER_NOT_LINKED"


class UnknownSender(SenderNotLinked):
    code = "UNKNOWN_SENDER"


class NotInFuture(LedgerError):
    """A time that had to be ahead of now is not (e.g. a grant's ``expires_at``)."""

    code = "NOT_IN_FUTURE"


class UnknownCompany(LedgerError):
    code = "UNKNOWN_COMPANY"


class UnknownCategory(LedgerError):
    code = "UNKNOWN_CATEGORY"


class PriceMismatch(LedgerError):
    code = "PRICE_MISMATCH"


class NotPermitted(LedgerError):
    """The caller may not take this step (e.g. approve their own adjustment, or a tenant
    cancelling a request that is already invoiced)."""

    code = "NOT_PERMITTED"


class IdempotencyConflict(LedgerError):
    code = "IDEMPOTENCY_CONFLICT"


class ConcurrencyConflict(LedgerError):
    """Optimistic-concurrency retries were exhausted; the command wrote nothing."""

    code = "CONCURRENCY_CONFLICT"


class LoginLinkUsed(LedgerError):
    """A one-time console login link was already used to sign in."""

    code = "LOGIN_LINK_USED"
