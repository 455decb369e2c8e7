"""librdkafka (confluent-kafka, the client under most non-Python producers: Go, Ruby, Node,
C#) publishing usage to the broker the tests start: structured events with keys and extra
headers, CloudEvents binary-mode events, and bad records dead-lettered with a code."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from confluent_kafka import Producer

from ledger_service.service.ledger import LedgerApplication
from tests.integration.ingestion_support import (
    ingestion_settings,
    new_topics,
    open_company,
    read_all,
    running_consumer,
    usage_event,
    wait_until_counted,
)
from tests.integration.test_ingestion import debits, ledger

pytestmark = pytest.mark.integration
__all__ = ["ledger"]  # the fixture, shared with test_ingestion


def librdkafka_publish(kafka: str, topic: str, records: list[dict[str, Any]]) -> None:
    producer = Producer({"bootstrap.servers": kafka, "acks": "all", "linger.ms": 5})
    delivered: list[Any] = []
    for record in records:
        producer.produce(topic, on_delivery=lambda err, _msg: delivered.append(err), **record)
    assert producer.flush(30) == 0, "not every record was delivered"
    assert delivered == [None] * len(records), delivered


def binary_mode(company: str, sender: str, event_id: str) -> dict[str, Any]:
    """The CloudEvents Kafka binding's binary mode, as the Go and Java SDKs send by default."""
    _, structured = usage_event(company, sender, event_id=event_id)
    document = json.loads(structured)
    headers = [(f"ce_{name}", str(value).encode()) for name, value in document.items()
               if name not in ("data", "datacontenttype")]  # fmt: skip
    headers.append(("content-type", b"application/json"))
    return {"key": company.encode(), "value": json.dumps(document["data"]).encode(),
            "headers": headers}  # fmt: skip


async def test_librdkafka_producers_are_billed_and_bad_records_dead_lettered(
    ledger: LedgerApplication, database_url: str, kafka_bootstrap: str, company_id: str
) -> None:
    topics = await new_topics(kafka_bootstrap)
    sender = f"{company_id}-w1"
    open_company(ledger, company_id, [sender], prepaid="10")  # marketing at 0.5
    key, value = usage_event(company_id, sender, event_id="structured-1")
    records = [
        {"key": key, "value": value, "headers": [("traceparent", b"00-abc-def-01")]},
        binary_mode(company_id, sender, "binary-1"),
        {"key": key, "value": b"{not json"},
        {"key": b"someone-else", "value": usage_event(company_id, sender, event_id="k")[1]},
    ]
    await asyncio.to_thread(librdkafka_publish, kafka_bootstrap, topics.usage, records)
    async with running_consumer(ingestion_settings(database_url, kafka_bootstrap, topics)) as r:
        await wait_until_counted(len(records), r)
        assert (r.total("applied"), r.total("dead_lettered")) == (2, 2)
    assert sorted(d.reference for d in debits(ledger, company_id)) == [
        "//messaging/test#binary-1", "//messaging/test#structured-1",
    ]  # fmt: skip
    letters = await read_all(kafka_bootstrap, topics.dlq, 2)
    codes = sorted(dict(letter.headers)["ledger-error-code"].decode() for letter in letters)
    assert codes == ["KEY_MISMATCH", "MALFORMED_JSON"]
