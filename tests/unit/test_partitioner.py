"""The import's key → partition mapping is aiokafka's default partitioner, exactly."""

from __future__ import annotations

import random

from aiokafka.partitioner import DefaultPartitioner
from aiokafka.partitioner import murmur2 as aiokafka_murmur2

from hub.adapters.partitioner import murmur2, partition_for


def test_murmur2_equals_aiokafkas_for_keys_of_every_length_and_byte() -> None:
    rng = random.Random(17)
    keys = [bytes(rng.randrange(256) for _ in range(rng.randrange(0, 70))) for _ in range(20_000)]
    keys += [bytes([b]) * n for b in (0, 0x7F, 0x80, 0xFF) for n in range(12)]
    keys += [f"gebruik-{i:07d}".encode() for i in range(5_000)] + ["g-é".encode()]
    assert [murmur2(k) for k in keys] == [aiokafka_murmur2(k) for k in keys]


def test_partition_for_puts_every_key_where_the_default_partitioner_does() -> None:
    default = DefaultPartitioner()
    rng = random.Random(7)
    for count in (1, 2, 3, 7, 12, 64):
        partitions = list(range(count))
        for _ in range(2_000):
            key = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 40)))
            assert partition_for(key, partitions, partitions) == default(key, partitions, partitions)


def test_partition_for_a_record_without_key_is_one_of_the_available_partitions() -> None:
    assert partition_for(None, [0, 1, 2], [2]) == 2
    assert partition_for(None, [0, 1, 2], []) in {0, 1, 2}
