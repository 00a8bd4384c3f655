"""The checkpoint record (relay/checkpoint.py): what a new leader reads to mark the
rows of a batch whose Kafka commit succeeded before the old leader could mark them
(architecture invariant 3). It must round-trip exactly and refuse what it cannot
read rather than guess."""

from __future__ import annotations

import json

import pytest

from relay.checkpoint import CHECKPOINT_VERSION, Checkpoint, checkpoint_key


def test_encode_then_decode_gives_the_same_checkpoint_at_its_offset() -> None:
    checkpoint = Checkpoint(shard=3, outbox_ids=[5, 9, 2**62])
    decoded = Checkpoint.decode(checkpoint.encode(), offset=41)
    assert decoded == Checkpoint(shard=3, outbox_ids=[5, 9, 2**62], offset=41)


def test_the_encoding_is_compact_versioned_json() -> None:
    raw = Checkpoint(shard=0, outbox_ids=[1, 2]).encode()
    assert raw == b'{"v":1,"shard":0,"ids":[1,2]}'
    assert json.loads(raw)["v"] == CHECKPOINT_VERSION


def test_an_empty_batch_round_trips() -> None:
    assert Checkpoint.decode(Checkpoint(1, []).encode(), 0) == Checkpoint(1, [], 0)


def test_ids_keep_their_order() -> None:
    ids = [30, 10, 20]
    assert Checkpoint.decode(Checkpoint(2, ids).encode(), 7).outbox_ids == ids


@pytest.mark.parametrize(
    "raw",
    [
        b'{"v":2,"shard":0,"ids":[1]}',
        b'{"v":"1","shard":0,"ids":[1]}',
        b'{"shard":0,"ids":[1]}',
    ],
)
def test_an_unknown_version_is_refused(raw: bytes) -> None:
    with pytest.raises(ValueError, match="unknown checkpoint version"):
        Checkpoint.decode(raw, 0)


@pytest.mark.parametrize(
    ("raw", "error"),
    [
        (b"", ValueError),
        (b"not json", ValueError),
        (b'{"v":1,"ids":[1]}', KeyError),
        (b'{"v":1,"shard":0}', KeyError),
        (b'{"v":1,"shard":0,"ids":["x"]}', ValueError),
        (b'{"v":1,"shard":"zero","ids":[1]}', ValueError),
        (b'{"v":1,"shard":0,"ids":7}', TypeError),
    ],
)
def test_a_malformed_record_raises_instead_of_marking_rows(
    raw: bytes, error: type[Exception]
) -> None:
    with pytest.raises(error):
        Checkpoint.decode(raw, 0)


def test_each_shard_has_its_own_compaction_key() -> None:
    assert checkpoint_key(0) == b"0"
    assert checkpoint_key(12) == b"12"
    assert len({checkpoint_key(s) for s in range(64)}) == 64
