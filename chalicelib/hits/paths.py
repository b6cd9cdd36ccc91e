"""Pure path handling for hit counting: normalisation and the load generator's paths.

No AWS here; tested directly (tests/test_hits_paths.py).
"""

from __future__ import annotations

import random
import string
from collections.abc import Sequence

PREFIX = "/api/"
# Keys must stay under DynamoDB's limits (partition key <= 2,048 bytes): the longest key
# built from a path adds ~40 bytes to it.
MAX_PATH_BYTES = 1024

POOL_SIZE = 3
POOL_STRING_LENGTH = 8
MIN_SEGMENTS = 1
MAX_SEGMENTS = 6
_POOL_ALPHABET = string.ascii_lowercase + string.digits


def normalise(rest: str) -> str:
    """The counted form of a request path below /api/.

    `rest` is what follows `/api/` (the greedy route parameter). A query string or fragment
    is dropped, empty segments are removed, case and every other character are kept (no
    percent-decoding), and the result ends with one slash:
    "one//two/?x=1" -> "/api/one/two/", "" -> "/api/".
    """
    for mark in ("?", "#"):
        rest = rest.split(mark, 1)[0]
    return PREFIX + "".join(s + "/" for s in rest.split("/") if s)


def segments(path: str) -> list[str]:
    """The segments of a normalised path below /api/."""
    return [s for s in path[len(PREFIX) :].split("/") if s]


def too_long(path: str) -> bool:
    return len(path.encode("utf-8")) > MAX_PATH_BYTES


def make_pool(rng: random.Random) -> list[str]:
    """POOL_SIZE distinct random strings for one load-test run."""
    pool: list[str] = []
    while len(pool) < POOL_SIZE:
        candidate = "".join(rng.choice(_POOL_ALPHABET) for _ in range(POOL_STRING_LENGTH))
        if candidate not in pool:
            pool.append(candidate)
    return pool


def generate_paths(n: int, pool: Sequence[str], rng: random.Random) -> list[str]:
    """n normalised paths of MIN_SEGMENTS..MAX_SEGMENTS segments, each segment drawn from the pool."""
    return [
        PREFIX + "".join(rng.choice(pool) + "/" for _ in range(rng.randint(MIN_SEGMENTS, MAX_SEGMENTS)))
        for _ in range(n)
    ]
