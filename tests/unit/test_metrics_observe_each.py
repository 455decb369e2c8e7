"""``observe_each`` counts a batch of amounts into a histogram exactly as ``observe`` one at a
time would: the same buckets (bounds inclusive) and the same sum."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Histogram

from ledger_service.metrics import observe_each

BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


def histogram() -> Histogram:
    return Histogram("lag_seconds", "lag", buckets=BUCKETS, registry=CollectorRegistry())


def samples(h: Histogram) -> dict[str, float]:
    [metric] = h.collect()
    return {f"{s.name}{sorted(s.labels.items())}": s.value for s in metric.samples}


amounts = st.lists(
    st.one_of(
        st.sampled_from(BUCKETS),  # on a bound: counted in that bound's bucket
        st.floats(min_value=0, max_value=100, allow_nan=False),
    ),
    max_size=50,
)


@given(batches=st.lists(amounts, max_size=4))
def test_observe_each_counts_as_observe_does(batches: list[list[float]]) -> None:
    one_by_one, batched = histogram(), histogram()
    for batch in batches:
        for amount in batch:
            one_by_one.observe(amount)
        observe_each(batched, batch)
    expected, got = samples(one_by_one), samples(batched)
    assert expected.keys() == got.keys()
    for name, value in expected.items():
        assert math.isclose(got[name], value, rel_tol=1e-9, abs_tol=1e-9), name


def test_an_amount_on_a_bound_is_in_that_bucket() -> None:
    h = histogram()
    observe_each(h, [0.05, 0.0500001, 31.0])
    got = samples(h)
    assert got["lag_seconds_bucket[('le', '0.05')]"] == 1
    assert got["lag_seconds_bucket[('le', '0.1')]"] == 2
    assert got["lag_seconds_bucket[('le', '30.0')]"] == 2
    assert got["lag_seconds_bucket[('le', '+Inf')]"] == 3
    assert got["lag_seconds_count[]"] == 3
