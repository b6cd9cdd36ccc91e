"""Run every benchmark against one DynamoDB Local and print (or write) the Markdown report.

python -m bench            # print
python -m bench --readme   # also replace the figures between the markers in README.md
"""

from __future__ import annotations

import argparse
import importlib
import platform
import time
from pathlib import Path

from devtools.ddblocal import DynamoDBLocal

BENCHMARKS = ["bench.streams", "bench.hits", "bench.sums", "bench.survey"]
README = Path(__file__).resolve().parents[1] / "README.md"
START, END = "<!-- bench:start -->", "<!-- bench:end -->"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--readme", action="store_true", help="write the figures into README.md")
    parser.add_argument("only", nargs="*", help="module names to run (default: all)")
    args = parser.parse_args()
    modules = [m for m in BENCHMARKS if not args.only or m.split(".")[-1] in args.only]
    sections = [
        f"_Measured {time.strftime('%Y-%m-%d')} on {platform.machine()}, {platform.python_version()}, "
        "DynamoDB Local (in-memory) on the same machine; ratios come from cases interleaved in one run._"
    ]
    with DynamoDBLocal() as database:
        for name in modules:
            module = importlib.import_module(name)
            print(f"running {name} ...", flush=True)
            sections.append(module.run(database.endpoint_url))
    report = "\n\n".join(sections)
    print(report)
    if args.readme:
        text = README.read_text()
        head, rest = text.split(START, 1)
        _, tail = rest.split(END, 1)
        README.write_text(f"{head}{START}\n{report}\n{END}{tail}")


if __name__ == "__main__":
    main()
