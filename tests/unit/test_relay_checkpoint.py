"""The checkpoint record (relay/checkpoint.py): what a new leader reads to mark the
rows of batches whose Kafka commit succeeded before the old leader could mark them
(architecture invariant 3). It must round-trip exactly, read the previous version a
rolling upgrade leaves behind, and refuse what it cannot read rather than guess."""

from __future__ import annotations

import json

import pytest

from relay.checkpoint import CHECKPOINT_VERSION, Checkpoint, checkpoint_key


def test_a_checkpoint_names_its_batch_and_the_earlier_unmarked_ones() -> None:
    written = Checkpoint(shard=2, outbox_ids=[7, 8], unmarked=[3, 4])
    read = Checkpoint.decode(written.encode(), offset=11)
    assert read == Checkpoint(shard=2, outbox_ids=[7, 8], unmarked=[3, 4], offset=11)
    assert sorted(read.to_mark()) == [3, 4, 7, 8]


def test_encode_then_decode_gives_the_same_checkpoint_at_its_offset() -> None:
    checkpoint = Checkpoint(shard=3, outbox_ids=[5, 9, 2**62])
    decoded = Checkpoint.decode(checkpoint.encode(), offset=41)
    assert decoded == Checkpoint(shard=3, outbox_ids=[5, 9, 2**62], offset=41)


def test_the_encoding_is_compact_versioned_json() -> None:
    raw = Checkpoint(shard=0, outbox_ids=[1, 2], unmarked=[0]).encode()
    assert raw == b'{"v":2,"shard":0,"ids":[1,2],"unmarked":[0]}'
    assert json.loads(raw)["v"] == CHECKPOINT_VERSION


def test_an_empty_batch_round_trips() -> None:
    assert Checkpoint.decode(Checkpoint(1, []).encode(), 0) == Checkpoint(1, [], [], 0)


def test_ids_keep_their_order() -> None:
    ids = [30, 10, 20]
    assert Checkpoint.decode(Checkpoint(2, ids).encode(), 7).outbox_ids == ids


def test_the_previous_version_names_every_row_its_writer_may_have_left_unmarked() -> None:
    read = Checkpoint.decode(b'{"v":1,"shard":0,"ids":[5,6]}', offset=3)
    assert read.unmarked == []
    assert sorted(read.to_mark()) == [5, 6]


@pytest.mark.parametrize("version", [None, 0, 3, "1", "2", True, 2.0])
def test_a_version_it_does_not_know_is_refused(version: object) -> None:
    doc = {"shard": 0, "ids": [1], "unmarked": []}
    if version is not None:
        doc["v"] = version
    with pytest.raises(ValueError, match="version"):
        Checkpoint.decode(json.dumps(doc).encode(), offset=0)


@pytest.mark.parametrize(
    ("raw", "error"),
    [
        (b"", ValueError),
        (b"not json", ValueError),
        (b'{"v":2,"ids":[1]}', KeyError),
        (b'{"v":2,"shard":0}', KeyError),
        (b'{"v":2,"shard":0,"ids":["x"]}', ValueError),
        (b'{"v":2,"shard":"zero","ids":[1]}', ValueError),
        (b'{"v":2,"shard":0,"ids":7}', TypeError),
        (b'{"v":2,"shard":0,"ids":[1],"unmarked":["x"]}', ValueError),
        (b'{"v":1,"shard":0}', KeyError),
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
