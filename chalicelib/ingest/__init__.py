"""Ingest at scale: POST /events puts batches of events on a Kinesis stream; a consumer applies them, aggregated
per key, to the same items the direct endpoints write."""
