"""What the hits ranking's freshness costs: hits through the events stream at Zipf (s = 1.1) over 100,000 paths, 1 B a
day, the deployed batching (1 s window, batches of 1,000), with the sweep making 1, 3 or 6 passes a minute.

One shard's minute of batches is applied as in `bench/ingest.py` (`measure_shard`), with the sweep's passes at
their times in between and after, until everything listed is ranked; every call is priced by AWS's rules. Units
per event, split into the consumer's writes and the sweep's; the ranking's lag bound each setting gives
(chalicelib/hits/slots.py).
"""

from __future__ import annotations

import logging
import random
import time

from bench.common import set_env, unmetered_client, use_endpoint
from bench.ingest import BATCHINGS, KINDS, SEED, SLICE_S, measure_shard, stream
from bench.stream_model import ZIPF_100K, draw_requests
from chalicelib.hits import slots
from chalicelib.process import settings
from chalicelib.process.observability import SERVICE

PASSES = (1, 3, 6)


def run(endpoint_url: str) -> str:
    logging.getLogger(SERVICE).setLevel(logging.WARNING)
    set_env("POWERTOOLS_METRICS_DISABLED", "true")
    client = use_endpoint(endpoint_url)
    reader = unmetered_client(endpoint_url)
    hits = next(kind for kind in KINDS if kind.type == "hit")
    batching = BATCHINGS[0]
    requests = draw_requests(ZIPF_100K, max(SLICE_S.values()), random.Random(SEED))
    s = stream(hits, ZIPF_100K, requests)
    worst_wait = settings.get().worst_case_s
    rows = []
    started = time.perf_counter()
    for passes in PASSES:
        case, swept = measure_shard(client, reader, s, batching, passes)
        consumer = case.per_event(case.bill.write_units - swept.write_units)
        sweep = case.per_event(swept.write_units)
        bound = slots.lag_bound_s(worst_wait, 60 / passes)
        rows.append(
            f"| {passes} | {bound:.0f} s | {consumer:.3f} | {sweep:.3f} | {consumer + sweep:.3f} | "
            f"{case.per_event(case.bill.read_units):.3f} |"
        )
        print(f"  {passes} passes: {time.perf_counter() - started:.0f} s", flush=True)
    return "\n".join(
        [
            "### Hits ranking: freshness against cost (`bench/hits_ranking.py`)",
            "",
            f"Hits through the stream, {ZIPF_100K.name}, 1 B a day ({s.shards} shards), batching "
            f"{batching.window_s:g} s / {batching.size:,}: one shard's {case.events:,} events of a minute, priced "
            "by AWS's rules. The sweep's passes are metered until everything listed is ranked.",
            "",
            "| sweep passes a minute | ranking lag bound | consumer WU/event | sweep WU/event | total WU/event "
            "| RU/event |",
            "|---|---|---|---|---|---|",
            *rows,
        ]
    )
