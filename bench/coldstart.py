"""Cold start: the wall time of a fresh `import app` against a bare Chalice app with one boto3 client, and the
size of the deployment package.

Every case is a whole new Python process (as a Lambda cold start is), started from the repository root with the
dev stage's environment variables and no network; the cases are interleaved round by round because the machine
is noisy. The deployment package is built with `chalice package` (the prod stage, into a temporary directory).

    python -m bench coldstart
"""

from __future__ import annotations

import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
import zipfile
from collections import defaultdict
from pathlib import Path

from bench.common import PROJECT_DIR, median, table_md

# The benchmark needs no database: python -m bench starts DynamoDB Local only for benchmarks that do.
NEEDS_DATABASE = False

ROUNDS = 15
WARM_UP_ROUNDS = 1
IMPORTTIME_RUNS = 3
TOP_PACKAGES = 8
BUDGET = 1.3
SWAGGER_UI_DIR = "aws_lambda_powertools/event_handler/openapi/swagger_ui/"  # chalicelib/edge/docs.py serves these
BASELINE_NAME = "bare Chalice app + one boto3 client"
APP_CLIENT_NAME = "`import app` + its DynamoDB client"

BASELINE = (
    "from chalice import Chalice; import boto3; app = Chalice(app_name='x'); "
    "client = boto3.client('dynamodb', region_name='us-east-1')"
)
# The models' validators and schemas are built on first use (contract.Strict/Reply: defer_build); this case
# builds every one of them, more than any one request does, to show what the deferral moves out of the import.
BUILD_MODELS = """
from chalicelib.edge import contract
todo = [contract.Strict, contract.Reply]
while todo:
    model = todo.pop()
    todo += model.__subclasses__()
    model.model_rebuild()
"""
TRACED_NAME = "`import app` + its DynamoDB client + the tracer (a stage with `xray` on)"
CASES = {
    "python (interpreter start only)": "pass",
    BASELINE_NAME: BASELINE,
    "`import app`": "import app",
    APP_CLIENT_NAME: "import app; from chalicelib.process import runtime; runtime.dynamodb()",
    "`import app` + its DynamoDB client + every model built": "import app; from chalicelib.process import runtime; runtime.dynamodb()"
    + BUILD_MODELS,
    # What a traced stage's first request adds: Powertools' Tracer imports the X-Ray SDK and patches botocore. As in
    # Lambda (LAMBDA_TASK_ROOT set), or Powertools would switch the tracer off and skip the patching.
    TRACED_NAME: "import app; from chalicelib.process import observability, runtime; runtime.dynamodb(); observability.tracer()",
}
CASE_ENV = {TRACED_NAME: {"TRACING": "true", "LAMBDA_TASK_ROOT": str(PROJECT_DIR)}}
# Each case also prints its own time from its first statement to its last: the process without the interpreter's
# start and exit (a Lambda container is never shut down between requests, so its exit is not a cold start's).
TIMED = "import time as _time; _started = _time.perf_counter()\n{code}\nprint(_time.perf_counter() - _started)"
# What `import app` leaves behind: does it create a boto3 client or import boto3 on its own?
PROBE = (
    "import json, sys; import app; from chalicelib.process import runtime; "
    "print(json.dumps({'client': runtime.has_clients(), "
    "'boto3': 'boto3' in sys.modules}))"
)


def lambda_env() -> dict[str, str]:
    """What the function sees: the dev stage's variables from .chalice/config.json, a region, dummy credentials,
    no instance metadata lookups (no network)."""
    config = json.loads((PROJECT_DIR / ".chalice" / "config.json").read_text())
    stage = config["stages"]["dev"]
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "LANG": "C.UTF-8",
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_EC2_METADATA_DISABLED": "true",
        **config.get("environment_variables", {}),
        **stage.get("environment_variables", {}),
    }


def _python(code: str, *flags: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *flags, "-c", code],
        cwd=PROJECT_DIR,
        env={**lambda_env(), **(env or {})},
        check=True,
        capture_output=True,
        text=True,
    )


def _wall_times() -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Seconds per case: of the whole process, and of its code alone (as it timed itself); the warm-up rounds
    (which fill the OS page cache) are dropped."""
    times: dict[str, list[float]] = {name: [] for name in CASES}
    ready: dict[str, list[float]] = {name: [] for name in CASES}
    for round_number in range(WARM_UP_ROUNDS + ROUNDS):
        for name, code in CASES.items():  # interleaved: each round runs every case
            started = time.perf_counter()
            own = float(_python(TIMED.format(code=code), env=CASE_ENV.get(name)).stdout.split()[-1])
            if round_number >= WARM_UP_ROUNDS:
                times[name].append(time.perf_counter() - started)
                ready[name].append(own)
    return times, ready


_IMPORTTIME = re.compile(r"^import time:\s+(\d+) \|\s+(\d+) \| ( *)(\S+)$")


def _app_imports() -> list[tuple[int, int, int, str]]:
    """(self us, cumulative us, depth, module) of every import under `import app`, from one -X importtime run.
    A module's line follows those of the imports it triggered; `app` is at depth 0."""
    subtree: list[tuple[int, int, int, str]] = []
    for line in _python("import app", "-X", "importtime").stderr.splitlines():
        match = _IMPORTTIME.match(line)
        if not match:
            continue
        self_us, cumulative_us, indent, module = match.groups()
        subtree.append((int(self_us), int(cumulative_us), len(indent) // 2, module))
        if subtree[-1][2] == 0:
            if module == "app":
                return subtree
            subtree = []  # the interpreter's own start-up imports
    raise RuntimeError("no `app` line in the -X importtime output")


def _import_costs() -> tuple[dict[str, float], dict[str, float]]:
    """Median milliseconds of `import app` under -X importtime: own time summed per top-level package, and
    cumulative time per top-level package (with everything it is the first to import)."""
    per_package: dict[str, list[float]] = defaultdict(list)
    per_module: dict[str, list[float]] = defaultdict(list)
    for _ in range(IMPORTTIME_RUNS):
        packages: dict[str, float] = defaultdict(float)
        for self_us, cumulative_us, depth, module in _app_imports():
            packages[module.split(".")[0]] += self_us / 1000
            if "." not in module and depth > 0:  # a top-level package, where it is first imported
                per_module[module].append(cumulative_us / 1000)
        for package, ms in packages.items():
            per_package[package].append(ms)
    return (
        {name: median(values) for name, values in per_package.items()},
        {name: median(values) for name, values in per_module.items()},
    )


def _build_package(out: Path) -> Path:
    subprocess.run(
        [Path(sys.executable).parent / "chalice", "package", "--stage", "prod", "--pkg-format", "cloudformation", out],
        cwd=PROJECT_DIR,
        env={**os.environ, "AWS_DEFAULT_REGION": os.environ.get("AWS_DEFAULT_REGION", "us-east-1")},
        check=True,
        capture_output=True,
    )
    return out / "deployment.zip"


def _top_level(entry: str) -> str:
    """The package a zip entry belongs to; a distribution's metadata counts with the distribution's name."""
    first = entry.split("/")[0]
    return first.removesuffix(".py") if "/" in entry or first.endswith(".py") else first


def _zip_sizes(path: Path) -> tuple[dict[str, int], int]:
    """Compressed bytes per top-level name in the zip, and those of the Swagger UI files /docs serves."""
    sizes: dict[str, int] = defaultdict(int)
    swagger_ui = 0
    with zipfile.ZipFile(path) as bundle:
        for info in bundle.infolist():
            sizes[_top_level(info.filename)] += info.compress_size
            if info.filename.startswith(SWAGGER_UI_DIR) and info.filename.endswith((".js", ".css")):
                swagger_ui += info.compress_size
    return sizes, swagger_ui


def _import_section(times: dict[str, list[float]], ready: dict[str, list[float]], probe: dict[str, bool]) -> list[str]:
    medians = {name: median(values) * 1000 for name, values in times.items()}
    own = {name: median(values) * 1000 for name, values in ready.items()}
    _floor, baseline, bare_app, app_client, all_models, traced = (medians[name] for name in CASES)
    own_baseline, own_app_client = own[BASELINE_NAME], own[APP_CLIENT_NAME]
    rows = [
        [name, f"{ms:.0f}", f"{ms / baseline:.2f}x", f"{own[name]:.0f}", f"{own[name] / own_baseline:.2f}x"]
        for name, ms in medians.items()
    ]
    verdict = "within" if app_client / baseline <= BUDGET else "**over**"
    return [
        f"_Measured {time.strftime('%Y-%m-%d')} with Python {platform.python_version()}._ "
        f"Wall time of a new process per case, {ROUNDS} interleaved rounds after {WARM_UP_ROUNDS} warm-up, medians; "
        "from the repository root with the dev stage's environment variables, dummy credentials and no network, "
        "bytecode caches warm. The baseline is `" + BASELINE + "`. Each process also times its own code (from its "
        "first statement to its last: without the interpreter's start and exit).",
        "",
        table_md(["case", "process ms", "vs baseline", "own code ms", "vs baseline"], rows),
        "",
        f"`import app` {'creates' if probe['client'] else 'creates no'} boto3 client "
        f"(chalicelib/process/runtime.py makes them on first use) and {'imports' if probe['boto3'] else 'does not import'} boto3 "
        "(botocore's session makes the clients). So like for like is `import app` plus its "
        f"DynamoDB client against the baseline: **{app_client / baseline:.2f}x** as whole processes, {verdict} the "
        f"{BUDGET}x budget ({own_app_client / own_baseline:.2f}x for the code alone; `import app` alone: "
        f"{bare_app / baseline:.2f}x). The models' validators are built on first use: building all of them adds "
        f"{all_models - app_client:.0f} ms to the process, and a request builds only the few it uses. app.py "
        "freezes what its imports made (`gc.freeze()`), which also spares the process's exit a collection over "
        "them: the whole-process figures count that, the own-code figures do not.",
        "",
        f"Tracing (Powertools Tracer, a stage setting: Chalice's `xray`, off by default) adds **{traced - app_client:.0f} "
        f"ms** to a cold start ({traced / app_client:.2f}x of `import app` + its client; {traced / baseline:.2f}x the "
        "baseline): the X-Ray SDK's import and botocore's patching, paid at the first request of a traced stage. "
        "Where it is off the SDK is never imported.",
    ]


def _importtime_section(per_package: dict[str, float], per_module: dict[str, float]) -> list[str]:
    total = sum(per_package.values())
    packages = sorted(per_package.items(), key=lambda item: -item[1])[:TOP_PACKAGES]
    modules = sorted(per_module.items(), key=lambda item: -item[1])[:TOP_PACKAGES]
    return [
        f"Where `import app` spends its time (`python -X importtime`, medians of {IMPORTTIME_RUNS} runs; "
        f"{total:.0f} ms of imports under `app` in all; tracing slows them, so read these for where, not how long):",
        "",
        table_md(
            ["package (own time)", "ms", "package (cumulative: with what it imports first)", "ms"],
            [
                [f"`{package}`", f"{ms:.0f}", f"`{module}`", f"{module_ms:.0f}"]
                for (package, ms), (module, module_ms) in zip(packages, modules, strict=False)
            ],
        ),
    ]


def _bundle_section(sizes: dict[str, int], swagger_ui_bytes: int) -> list[str]:
    total = sum(sizes.values())
    largest = sorted(sizes.items(), key=lambda item: -item[1])[:TOP_PACKAGES]
    return [
        f"The deployment package (`chalice package --stage prod`, Linux wheels): **{total / 1e6:.1f} MB** "
        "deployment.zip. Largest entries (compressed):",
        "",
        table_md(
            ["top-level name", "MB", "share"], [[f"`{n}`", f"{b / 1e6:.2f}", f"{b / total:.0%}"] for n, b in largest]
        ),
        "",
        f"Swagger UI's script and stylesheet (for `/docs`) are {swagger_ui_bytes / 1e6:.2f} MB of it: the copy "
        "Powertools ships for its own event handler, which the function needs no other copy of.",
    ]


def run(endpoint_url: str) -> str:
    del endpoint_url  # no database
    probe = json.loads(_python(PROBE).stdout)
    times, ready = _wall_times()
    per_package, per_module = _import_costs()
    with tempfile.TemporaryDirectory() as out:
        sizes, swagger_ui_bytes = _zip_sizes(_build_package(Path(out)))
    return "\n".join(
        [
            "### Cold start and package size (`bench/coldstart.py`)",
            "",
            *_import_section(times, ready, probe),
            "",
            *_importtime_section(per_package, per_module),
            "",
            *_bundle_section(sizes, swagger_ui_bytes),
        ]
    )


if __name__ == "__main__":
    print(run(""))
