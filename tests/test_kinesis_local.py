"""devtools.kinesis_local: kinesalite for `make run`, its stream, and its data across a restart."""

from __future__ import annotations

from pathlib import Path

import pytest

from devtools.ddblocal import PROJECT_DIR
from devtools.kinesis_local import (
    LOCAL_SHARDS,
    Kinesalite,
    ensure_stream,
    find_kinesalite,
    kinesis_client,
    node_available,
)

pytestmark = [
    pytest.mark.pure,  # no database: runs once
    pytest.mark.skipif(not node_available() or find_kinesalite(PROJECT_DIR) is None, reason="needs Node and npm ci"),
]


def test_the_stream_is_created_once_and_survives_a_restart(tmp_path: Path) -> None:
    server = Kinesalite(data_path=tmp_path / "kinesis", log_path=tmp_path / "kinesalite.log")
    try:
        client = kinesis_client(server.start())
        assert ensure_stream(client, "events") is True
        assert ensure_stream(client, "events") is False
        summary = client.describe_stream_summary(StreamName="events")["StreamDescriptionSummary"]
        assert (summary["StreamStatus"], summary["OpenShardCount"]) == ("ACTIVE", LOCAL_SHARDS)
        put = client.put_records(StreamName="events", Records=[{"Data": b"kept", "PartitionKey": "k"}])
        (record,) = put["Records"]
        assert len(record["SequenceNumber"]) == 56  # as long as Kinesis's

        server.restart()  # same port, same data
        assert server.running
        iterator = client.get_shard_iterator(
            StreamName="events", ShardId=record["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        records = client.get_records(ShardIterator=iterator)["Records"]
        assert [(r["SequenceNumber"], r["Data"]) for r in records] == [(record["SequenceNumber"], b"kept")]
    finally:
        server.stop()
    assert not server.running


def test_it_listens_on_loopback_only(tmp_path: Path) -> None:
    server = Kinesalite(log_path=tmp_path / "kinesalite.log")
    try:
        server.start()
        listening = [line for line in server.log_tail() if "listening" in line]
        assert listening == [f"kinesalite listening at http://127.0.0.1:{server.port}"]
    finally:
        server.stop()
