"""Kafka projector members' records of their partitions in PostgreSQL (migration 0018).

One row per consumer, replaced on every assignment and revoke and deleted when the consumer
stops (:class:`hub.ports.members.MemberRegistry`).
"""

from __future__ import annotations

from sqlalchemy import ARRAY, Column, DateTime, Integer, Table, Text, delete, func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from hub.adapters.postgres.errors import translate_db_errors
from hub.adapters.postgres.tables import metadata
from hub.ports.members import RecordedMember

__all__ = ["PostgresMemberRegistry", "projector_members"]

projector_members = Table(
    "projector_members",
    metadata,
    Column("client_id", Text, primary_key=True),
    Column("consumer_group", Text, nullable=False),
    Column("topic", Text, nullable=False),
    Column("host", Text, nullable=False),
    Column("pid", Integer, nullable=False),
    Column("partitions", ARRAY(Integer), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)


class PostgresMemberRegistry:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def record(
        self, *, client_id: str, group: str, topic: str, host: str, pid: int, partitions: tuple[int, ...]
    ) -> None:
        values = {
            "consumer_group": group,
            "topic": topic,
            "host": host,
            "pid": pid,
            "partitions": sorted(partitions),
            "updated_at": func.now(),
        }
        statement = (
            insert(projector_members)
            .values(client_id=client_id, **values)
            .on_conflict_do_update(index_elements=[projector_members.c.client_id], set_=values)
        )
        with translate_db_errors():
            async with self._engine.begin() as conn:
                await conn.execute(statement)

    async def forget(self, client_id: str) -> None:
        with translate_db_errors():
            async with self._engine.begin() as conn:
                await conn.execute(
                    delete(projector_members).where(projector_members.c.client_id == client_id)
                )

    async def recorded(self) -> list[RecordedMember]:
        with translate_db_errors():
            async with self._engine.connect() as conn:
                rows = (
                    await conn.execute(select(projector_members).order_by(projector_members.c.client_id))
                ).all()
        return [
            RecordedMember(
                client_id=r.client_id,
                group=r.consumer_group,
                topic=r.topic,
                host=r.host,
                pid=r.pid,
                partitions=tuple(r.partitions),
                updated_at=r.updated_at,
            )
            for r in rows
        ]
