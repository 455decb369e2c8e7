"""Topic provisioning and offsets helpers (aiokafka admin client)."""

from __future__ import annotations

import asyncio
import contextlib

import structlog
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaConnectionError, TopicAlreadyExistsError

log = structlog.get_logger(__name__)

CONNECT_ATTEMPTS_MAX = 50


async def ensure_topics(bootstrap: str, topics: dict[str, int]) -> None:
    """Create each missing topic with the given partition count; existing ones are kept."""
    admin = await _connected_admin(bootstrap)
    try:
        existing = set(await admin.list_topics())
        missing = [
            NewTopic(name, num_partitions=partitions, replication_factor=1)
            for name, partitions in topics.items()
            if name not in existing
        ]
        if missing:
            # Another instance may create them at the same moment: that is fine.
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics(missing)
            log.info("topics_created", topics=[t.name for t in missing])
    finally:
        await admin.close()


async def _connected_admin(bootstrap: str) -> AIOKafkaAdminClient:
    for attempt in range(CONNECT_ATTEMPTS_MAX):
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        try:
            await admin.start()
        except KafkaConnectionError:
            await admin.close()
            await asyncio.sleep(min(0.1 * (attempt + 1), 1.0))
            continue
        return admin
    raise KafkaConnectionError(f"no Kafka broker answers at {bootstrap}")
