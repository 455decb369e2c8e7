"""The fast event encoder writes exactly the library's bytes, or leaves the object to it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

from eventsourcing.persistence import JSONTranscoder
from hypothesis import given
from hypothesis import strategies as st

from ledger_service.domain.entries import DebitKind
from ledger_service.service.event_encoding import FastJSONTranscoder
from ledger_service.service.ledger import LedgerApplication
from tests.fakes import InMemoryLedger


def both() -> tuple[JSONTranscoder, FastJSONTranscoder]:
    """The library's transcoder and the fast one, with the application's transcodings."""
    app = InMemoryLedger()
    library = JSONTranscoder()
    app.register_transcodings(library)
    fast = app.mapper.transcoder
    assert isinstance(fast, FastJSONTranscoder)
    return library, fast


LIBRARY, FAST = both()

leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.text(),
    st.decimals(allow_nan=False, allow_infinity=False),
    st.datetimes(timezones=st.sampled_from([UTC, timezone(timedelta(hours=-5, minutes=-30))])),
    st.uuids(),
)
states = st.recursive(
    leaves,
    lambda inner: st.dictionaries(st.text(max_size=10), inner, max_size=5),
    max_leaves=20,
).filter(lambda value: isinstance(value, dict))


@given(states)
def test_fast_encoding_equals_the_librarys(state: dict[str, Any]) -> None:
    assert FAST.encode(state) == LIBRARY.encode(state)
    assert FAST.decode(FAST.encode(state)) == LIBRARY.decode(LIBRARY.encode(state))


@given(
    st.dictionaries(
        st.text(max_size=8),
        st.one_of(
            st.floats(allow_nan=False),
            st.lists(st.integers(), max_size=3),
            st.sets(st.text(max_size=3), max_size=3),
            st.sampled_from(list(DebitKind)),
        ),
        min_size=1,
        max_size=3,
    )
)
def test_what_it_does_not_write_the_library_does(state: dict[str, Any]) -> None:
    assert FAST.encode(state) == LIBRARY.encode(state)


def test_a_usage_debit_is_stored_as_before() -> None:
    """The stored bytes of a real debit, through the application's own mapper."""
    app: LedgerApplication = InMemoryLedger()
    app.open_wallet(
        company_id="enc",
        currency="USD",
        included_quota="1",
        rate_card={"marketing": "0.5"},
        actor="t",
        idempotency_key="o",
    )
    app.link_sender(company_id="enc", waba_id="w", actor="t", idempotency_key="l")
    wallet = app.get_wallet("enc")
    wallet.record_usage(
        Decimal("1.5"),
        usage_reference="//wa#é",
        sender_id="w",
        conversation_id="c",
        category="marketing",
        units=3,
        unit_price=Decimal("0.5"),
        actor="ingestion",
        at=datetime(2026, 11, 23, 1, 2, 3, 456789, tzinfo=UTC),
    )
    event = wallet.collect_events()[-1]
    state = dict(vars(event))
    del state["originator_id"], state["originator_version"]
    assert app.mapper.to_stored_event(event).state == LIBRARY.encode(state)
    assert FAST._dict(state).encode() == LIBRARY.encode(state)  # by the fast path, no fallback
