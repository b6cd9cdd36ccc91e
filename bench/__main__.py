"""Run every benchmark against one DynamoDB Local and print (or write) the Markdown report.

python -m bench                      # print
python -m bench --write              # also replace the figures between the markers in docs/benchmarks.md
python -m bench coldstart --write    # run one (or some) and replace only its section there
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import platform
import time
from pathlib import Path

from devtools.ddblocal import DynamoDBLocal

BENCHMARKS = [
    "bench.streams",
    "bench.stream_sketch",
    "bench.hits",
    "bench.metrics",
    "bench.metrics_history",
    "bench.survey",
    "bench.ingest",
    "bench.hits_ranking",
    "bench.coldstart",
]
REPORT = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"
START, END = "<!-- bench:start -->", "<!-- bench:end -->"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--write", action="store_true", help="write the figures into docs/benchmarks.md")
    parser.add_argument("only", nargs="*", help="module names to run (default: all)")
    args = parser.parse_args()
    modules = [m for m in BENCHMARKS if not args.only or m.split(".")[-1] in args.only]
    sections = [
        f"_Measured {time.strftime('%Y-%m-%d')} on {platform.machine()}, {platform.python_version()}, "
        "DynamoDB Local (in-memory) on the same machine; ratios come from cases interleaved in one run._"
    ]
    imported = [importlib.import_module(name) for name in modules]
    # A benchmark that needs no database says so (NEEDS_DATABASE = False); DynamoDB Local starts only if one does.
    needs_database = any(getattr(module, "NEEDS_DATABASE", True) for module in imported)
    with DynamoDBLocal() if needs_database else contextlib.nullcontext() as database:
        endpoint_url = database.endpoint_url if database else ""
        for name, module in zip(modules, imported, strict=True):
            print(f"running {name} ...", flush=True)
            sections.append(module.run(endpoint_url))
    report = "\n\n".join(sections)
    print(report)
    if args.write:
        text = REPORT.read_text()
        head, rest = text.split(START, 1)
        old, tail = rest.split(END, 1)
        if len(modules) < len(BENCHMARKS):
            report = _replace_sections(old.strip(), sections[1:])
        REPORT.write_text(f"{head}{START}\n{report}\n{END}{tail}")


def _replace_sections(report: str, sections: list[str]) -> str:
    """The written report with each new section in place of the one under the same ### heading (or appended)."""
    parts = report.split("\n\n### ")
    for section in sections:
        heading, body = section.removeprefix("### ").split("\n", 1)
        matches = [i for i, part in enumerate(parts) if i > 0 and part.split("\n", 1)[0] == heading]
        if matches:
            parts[matches[0]] = f"{heading}\n{body}"
        else:
            parts.append(f"{heading}\n{body}")
    return "\n\n### ".join(parts)


if __name__ == "__main__":
    main()
