"""Which checkpoint records a relay of this version recovers from (relay/checkpoint.py)."""

from __future__ import annotations

import json

import pytest

from relay.checkpoint import CHECKPOINT_VERSION, Checkpoint


def test_a_checkpoint_names_its_batch_and_the_earlier_unmarked_ones() -> None:
    written = Checkpoint(shard=2, outbox_ids=[7, 8], unmarked=[3, 4])
    read = Checkpoint.decode(written.encode(), offset=11)
    assert json.loads(written.encode())["v"] == CHECKPOINT_VERSION == 2
    assert read == Checkpoint(shard=2, outbox_ids=[7, 8], unmarked=[3, 4], offset=11)
    assert sorted(read.to_mark()) == [3, 4, 7, 8]


def test_the_previous_version_names_every_row_its_writer_may_have_left_unmarked() -> None:
    read = Checkpoint.decode(b'{"v":1,"shard":0,"ids":[5,6]}', offset=3)
    assert read.unmarked == []
    assert sorted(read.to_mark()) == [5, 6]


@pytest.mark.parametrize("version", [None, 0, 3, "2"])
def test_a_version_it_does_not_know_is_refused(version: object) -> None:
    raw = json.dumps({"v": version, "shard": 0, "ids": [1], "unmarked": []}).encode()
    with pytest.raises(ValueError, match="version"):
        Checkpoint.decode(raw, offset=0)
