"""Growth curves: what the portal's requests cost as history and the catalog grow.

For each database (SQLite file, and a private PostgreSQL server started here) and each size,
the benchmark builds a seeded synthetic history with bulk inserts and measures, in-process
through the FastAPI app (``TestClient``: the request path without the network):

- **history** of N usage records (``--records``, default 10^3, 10^4, 10^5; ``--full`` adds
  10^6): 80 % session records and 20 % batch jobs, all ended, spread over 20 projects with
  half of them in ``acme-vision``, the project measured. Each record is charged so that the
  project's total stays at 1,000 GPU-hours, below its 2,000 budget, so admission allows.
  Measured: session admission (``POST api/internal/sessions``, the hub's call, each
  session stopped again before the next), the quota API (``GET api/usage`` and
  ``api/projects`` as a member), the usage page (``GET /``, the member's cookie), and the
  usage-records CSV export (every record, as an operator): its time, and the peak of
  Python allocations while it streams (tracemalloc, a second pass).
- **catalog** of D datasets (``--datasets``, default 10^3, 10^4, 10^5): titles,
  descriptions and three tags from a fixed vocabulary; a third public, the rest granted to
  one of 20 projects. Measured: catalog search p50/p95 over the queries in ``QUERIES`` as
  an operator and as a member of two projects (each search also writes its audit entry).

The hub's token check is a fixed table (as in the unit tests): it is not what grows.
Output: a table on stdout and in ``bench/results/scale-<stamp>.md``, every figure in
``.json``, and a log-log plot of cost against size in ``.png``.

    .venv/bin/python -m bench.scale_bench --records 1000,10000 --datasets 1000,10000  # smoke
    make bench-scale                                         # the default sizes
    make bench-scale ARGS=--full                             # with 10^6 records (slow to build)
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import random
import shutil
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.datasets_bench import TAGS, WORDS  # noqa: E402
from tests.postgres import private_postgres  # noqa: E402

RESULTS_DIR = REPO / "bench" / "results"
SETTINGS = REPO / "hub_config" / "settings.yaml"
PREFIX = "/services/portal/"
HUB_TOKEN = "bench-hub-token"  # a token of the in-process bench only
PROJECTS = 20
BATCH = 20_000
QUERIES = {
    "browse": "datasets?limit=50",
    "one word": "datasets?q=satellite",
    "two words": "datasets?q=medical+vision",
    "tag": "datasets?tag=personal-data",
    "word + tag": "datasets?q=climate&tag=time-series",
    "no match": "datasets?q=zzzzzz",
}


# -- databases -----------------------------------------------------------------------------


def fresh_database(kind: str, server: str | None, workdir: Path, name: str) -> str:
    if kind == "sqlite":
        return f"sqlite:///{workdir / (name + '.sqlite')}"
    import psycopg

    admin = server.replace("postgresql+psycopg://", "postgresql://") + "/postgres"
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}"')
        connection.execute(f'CREATE DATABASE "{name}"')
    return f"{server}/{name}"


# -- the app -------------------------------------------------------------------------------


class Tokens:
    async def resolve(self, token):
        from aitestbed.portal.auth import Identity

        names = {"t-alice": ("alice", False), "t-olivia": ("olivia", False)}
        entry = names.get(token)
        return Identity(entry[0], entry[1], frozenset()) if entry else None


@contextlib.contextmanager
def portal(url: str):
    """The seeded portal (the example settings) on ``url``, and its test client."""
    from aitestbed.portal.app import create_app
    from aitestbed.portal.service import prepare_database
    from aitestbed.settings import load_settings
    from fastapi.testclient import TestClient

    os.environ["AITESTBED_DATABASE_URL"] = url
    engine = prepare_database(load_settings(SETTINGS))
    app = create_app(engine=engine, identity=Tokens(), prefix=PREFIX, internal_token=HUB_TOKEN)
    with TestClient(app) as client:
        yield client, engine
    engine.dispose()


# -- synthetic data ------------------------------------------------------------------------


def _bulk(engine, table, rows: Iterator[dict]) -> None:
    from sqlalchemy import insert

    batch: list[dict] = []
    for row in rows:
        batch.append(row)
        if len(batch) >= BATCH:
            with engine.begin() as connection:
                connection.execute(insert(table), batch)
            batch.clear()
    if batch:
        with engine.begin() as connection:
            connection.execute(insert(table), batch)


def _projects(engine) -> list[int]:
    """The measured project first, then synthetic ones up to ``PROJECTS``."""
    from aitestbed.portal import models
    from sqlalchemy import select

    with engine.begin() as connection:
        ids = dict(connection.execute(select(models.Project.slug, models.Project.id)).all())
    extra = [
        {
            "slug": f"synthetic-{i:02d}",
            "title": f"Synthetic project {i}",
            "description": "",
            "gpu_hours_budget": 1e9,
            "max_concurrent_gpus": 8,
            "storage_quota_gb": 10,
            "valid_from": datetime(2020, 1, 1).date(),
            "valid_until": datetime(2099, 12, 31).date(),
            "allowed_flavors": [],
            "allowed_images": [],
        }
        for i in range(PROJECTS - len(ids))
    ]
    _bulk(engine, models.Project.__table__, iter(extra))
    with engine.begin() as connection:
        others = connection.execute(
            select(models.Project.id).where(models.Project.slug != "acme-vision")
        ).scalars()
        return [ids["acme-vision"], *others]


def build_history(engine, count: int, seed: int = 16) -> None:
    """``count`` ended records (80 % sessions, 20 % jobs), half in acme-vision."""
    from aitestbed.portal import models
    from sqlalchemy import select

    rng = random.Random(seed)
    projects = _projects(engine)
    with engine.begin() as connection:
        user_id = connection.scalar(select(models.User.id).where(models.User.name == "bob"))
    # acme-vision's share adds up to 1,000 GPU-hours whatever the count.
    charge = 1000.0 / max(count // 2, 1)
    start = datetime(2025, 1, 1, tzinfo=UTC)

    def project_of(i: int) -> int:
        return projects[0] if i % 2 == 0 else rng.choice(projects[1:])

    def sessions() -> Iterator[dict]:
        for i in range(count * 4 // 5):
            began = start + timedelta(minutes=i)
            yield {
                "user_id": user_id,
                "project_id": project_of(i),
                "server_name": "",
                "flavor": "a100x1",
                "image": "pytorch",
                "gpus": 1.0,
                "started_at": began,
                "stopped_at": began + timedelta(hours=charge),
                "gpu_hours": charge,
            }

    def jobs() -> Iterator[dict]:
        for i in range(count - count * 4 // 5):
            began = start + timedelta(minutes=i)
            yield {
                "uid": f"bench{i:012d}",
                "owner": "bob",
                "unix_user": "bob",
                "project_id": project_of(i),
                "name": f"sweep-{i}",
                "kind": "script",
                "spec": {},
                "backend": "local",
                "state": "COMPLETED",
                "reason": "",
                "partition": "gpu",
                "nodes": 1,
                "gpus_per_node": 1,
                "time_limit_minutes": 60,
                "working_dir": "/w",
                "output_path": "/w/out",
                "submitted_at": began,
                "started_at": began,
                "ended_at": began + timedelta(hours=charge),
                "gpu_hours_charged": charge,
            }

    _bulk(engine, models.SessionRecord.__table__, sessions())
    _bulk(engine, models.Job.__table__, jobs())


def build_catalog(engine, count: int, seed: int = 7) -> None:
    """``count`` datasets; a third public, the rest granted to one of the projects."""
    from aitestbed.portal import models
    from sqlalchemy import select

    rng = random.Random(seed)
    projects = _projects(engine)
    now = datetime.now(UTC)
    datasets, tags = [], []
    for i in range(count):
        words = rng.sample(WORDS, 3)
        chosen = rng.sample(TAGS, 3)
        slug = f"ds-{i:06d}-{words[0]}"
        title = f"{words[0].title()} {words[1]} collection {i}"
        description = f"Data about {' and '.join(words)} gathered for study {i}."
        datasets.append(
            {
                "slug": slug,
                "title": title,
                "description": description,
                "license": "CC-BY-4.0",
                "version": "1",
                "visibility": "public" if i % 3 == 0 else "granted",
                "terms_version": None,
                "terms_text": "",
                "storage": {"kind": "pvc", "claim": "datasets", "sub_path": slug},
                "source": "api",
                "enabled": True,
                "created_at": now,
                "updated_at": now,
                "search_text": "\n".join((slug, title, description, " ".join(chosen))).lower(),
            }
        )
        tags.append(chosen)
    _bulk(engine, models.Dataset.__table__, iter(datasets))
    with engine.begin() as connection:
        ids = dict(connection.execute(select(models.Dataset.slug, models.Dataset.id)).all())
    _bulk(
        engine,
        models.DatasetTag.__table__,
        (
            {"dataset_id": ids[d["slug"]], "tag": tag, "position": position}
            for d, chosen in zip(datasets, tags, strict=True)
            for position, tag in enumerate(chosen)
        ),
    )
    _bulk(
        engine,
        models.DatasetGrant.__table__,
        (
            {
                "dataset_id": ids[d["slug"]],
                "project_id": projects[i % len(projects)],
                "source": "api",
                "granted_at": now,
            }
            for i, d in enumerate(datasets)
            if d["visibility"] == "granted"
        ),
    )
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.exec_driver_sql("ANALYZE")


# -- measurements --------------------------------------------------------------------------


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def timed(call, repeat: int, warmup: int = 3) -> dict[str, float]:
    for _ in range(warmup):
        call()
    timings = []
    for _ in range(repeat):
        started = time.perf_counter()
        call()
        timings.append((time.perf_counter() - started) * 1000)
    return {
        "p50_ms": round(percentile(timings, 0.5), 2),
        "p95_ms": round(percentile(timings, 0.95), 2),
    }


def _ok(response, status: int = 200):
    if response.status_code != status:
        raise RuntimeError(f"{response.request.url}: {response.status_code} {response.text}")
    return response


def measure_history(client, repeat: int) -> dict:
    alice = {"Authorization": "token t-alice"}
    hub = {"Authorization": f"token {HUB_TOKEN}"}
    body = {"user": "alice", "project": "acme-vision", "flavor": "a100x1", "image": "pytorch"}

    def admit():
        started = _ok(client.post(PREFIX + "api/internal/sessions", json=body, headers=hub), 201)
        record = started.json()["id"]
        _ok(client.post(PREFIX + f"api/internal/sessions/{record}/stop", headers=hub))

    def admit_only():
        # Admission alone: the stop runs outside the timing.
        started = time.perf_counter()
        response = client.post(PREFIX + "api/internal/sessions", json=body, headers=hub)
        elapsed = (time.perf_counter() - started) * 1000
        record = _ok(response, 201).json()["id"]
        _ok(client.post(PREFIX + f"api/internal/sessions/{record}/stop", headers=hub))
        return elapsed

    admit()
    admissions = [admit_only() for _ in range(repeat)]
    results = {
        "admission": {
            "p50_ms": round(percentile(admissions, 0.5), 2),
            "p95_ms": round(percentile(admissions, 0.95), 2),
        },
        "quota api (api/usage)": timed(
            lambda: _ok(client.get(PREFIX + "api/usage", headers=alice)), repeat
        ),
        "projects api": timed(
            lambda: _ok(client.get(PREFIX + "api/projects", headers=alice)), repeat
        ),
    }
    from aitestbed.portal.auth import TOKEN_COOKIE

    client.cookies.set(TOKEN_COOKIE, "t-alice")
    results["usage page"] = timed(lambda: _ok(client.get(PREFIX)), repeat)
    client.cookies.clear()
    results["csv export"] = measure_export(client)
    return results


def measure_export(client) -> dict:
    url = PREFIX + "api/usage-records.csv"
    olivia = {"Authorization": "token t-olivia"}

    def drain() -> tuple[int, int]:
        lines = size = 0
        with client.stream("GET", url, headers=olivia) as response:
            _ok(response)
            for chunk in response.iter_bytes():
                size += len(chunk)
                lines += chunk.count(b"\n")
        return lines - 1, size

    started = time.perf_counter()
    rows, size = drain()
    seconds = time.perf_counter() - started
    tracemalloc.start()
    try:
        drain()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return {
        "rows": rows,
        "bytes": size,
        "seconds": round(seconds, 3),
        "peak_mib": round(peak / 2**20, 2),
    }


def measure_catalog(client, repeat: int) -> dict:
    results = {}
    for who, token in (("operator", "t-olivia"), ("member", "t-alice")):
        headers = {"Authorization": f"token {token}"}
        every = []
        for name, path in QUERIES.items():
            figures = timed(
                lambda p=path, h=headers: _ok(client.get(PREFIX + "api/" + p, headers=h)), repeat
            )
            results[f"search {who}: {name}"] = figures
            every.append(figures["p95_ms"])
        results[f"search {who}: worst p95"] = {"p95_ms": max(every)}
    return results


# -- report --------------------------------------------------------------------------------


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def run(args) -> dict:
    report: dict = {
        "started": datetime.now(UTC).isoformat(),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "load_before": load_average(),
        "history": {},
        "catalog": {},
    }
    workdir = Path(tempfile.mkdtemp(prefix="aitestbed-scale-"))
    with contextlib.ExitStack() as stack:
        server = stack.enter_context(private_postgres()) if "postgresql" in args.databases else None
        for kind in args.databases:
            for count in args.records:
                url = fresh_database(kind, server, workdir, f"history_{kind}_{count}")
                with portal(url) as (client, engine):
                    started = time.perf_counter()
                    build_history(engine, count)
                    built = round(time.perf_counter() - started, 1)
                    figures = measure_history(client, args.repeat)
                figures["build_seconds"] = built
                figures["load"] = load_average()
                report["history"].setdefault(kind, {})[count] = figures
                print(f"{kind} {count:>9,} records: {json.dumps(figures)}", flush=True)
            for count in args.datasets:
                url = fresh_database(kind, server, workdir, f"catalog_{kind}_{count}")
                with portal(url) as (client, engine):
                    started = time.perf_counter()
                    build_catalog(engine, count)
                    built = round(time.perf_counter() - started, 1)
                    figures = measure_catalog(client, args.repeat)
                figures["build_seconds"] = built
                figures["load"] = load_average()
                report["catalog"].setdefault(kind, {})[count] = figures
                print(f"{kind} {count:>9,} datasets: {json.dumps(figures)}", flush=True)
    shutil.rmtree(workdir, ignore_errors=True)
    report["load_after"] = load_average()
    return report


HISTORY_METRICS = {
    "admission p95 (ms)": lambda f: f["admission"]["p95_ms"],
    "quota api p95 (ms)": lambda f: f["quota api (api/usage)"]["p95_ms"],
    "usage page p95 (ms)": lambda f: f["usage page"]["p95_ms"],
    "csv export (s)": lambda f: f["csv export"]["seconds"],
    "csv export peak (MiB)": lambda f: f["csv export"]["peak_mib"],
}
CATALOG_METRICS = {
    "search p95, operator (ms)": lambda f: f["search operator: worst p95"]["p95_ms"],
    "search p95, member (ms)": lambda f: f["search member: worst p95"]["p95_ms"],
}


def table(report: dict) -> str:
    lines = [f"Load average before {report['load_before']}, after {report['load_after']}.", ""]
    for section, metrics, unit in (
        ("history", HISTORY_METRICS, "records"),
        ("catalog", CATALOG_METRICS, "datasets"),
    ):
        lines.append(f"| database | {unit} | " + " | ".join(metrics) + " | load |")
        lines.append("| --- " * (len(metrics) + 3) + "|")
        for kind, sizes in report[section].items():
            for size, figures in sizes.items():
                values = " | ".join(str(metric(figures)) for metric in metrics.values())
                lines.append(f"| {kind} | {int(size):,} | {values} | {figures['load']} |")
        lines.append("")
    return "\n".join(lines)


def plot(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [("history", name, f) for name, f in HISTORY_METRICS.items()] + [
        ("catalog", name, f) for name, f in CATALOG_METRICS.items()
    ]
    columns = 4
    rows = (len(panels) + columns - 1) // columns
    figure, axes = plt.subplots(rows, columns, figsize=(4 * columns, 3.4 * rows), squeeze=False)
    for axis, (section, name, metric) in zip(axes.flat, panels, strict=False):
        for kind, sizes in report[section].items():
            xs = [int(size) for size in sizes]
            ys = [max(metric(figures), 1e-3) for figures in sizes.values()]
            axis.plot(xs, ys, marker="o", label=kind)
        axis.set_xscale("log")
        axis.set_yscale("log")
        axis.set_title(name, fontsize=10)
        axis.set_xlabel("records" if section == "history" else "datasets")
        axis.grid(True, which="both", alpha=0.3)
        if axis.lines:
            axis.legend(fontsize=8)
    for axis in list(axes.flat)[len(panels) :]:
        axis.set_visible(False)
    figure.suptitle(f"Cost against size (load {report['load_before']})")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def sizes(text: str) -> list[int]:
    return [int(float(part)) for part in text.split(",") if part.strip()]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=sizes, default=[1_000, 10_000, 100_000])
    parser.add_argument("--datasets", type=sizes, default=[1_000, 10_000, 100_000])
    parser.add_argument("--full", action="store_true", help="add 10^6 records (slow to build)")
    parser.add_argument(
        "--databases", type=lambda t: t.split(","), default=["sqlite", "postgresql"]
    )
    parser.add_argument("--repeat", type=int, default=50, help="requests per measurement")
    parser.add_argument("--results-dir", type=Path, default=RESULTS_DIR)
    args = parser.parse_args(argv)
    if args.full and 1_000_000 not in args.records:
        args.records.append(1_000_000)
    report = run(args)
    args.results_dir.mkdir(parents=True, exist_ok=True)
    stem = args.results_dir / f"scale-{datetime.now(UTC):%Y%m%d-%H%M%S}"
    stem.with_suffix(".json").write_text(json.dumps(report, indent=2))
    text = table(report)
    stem.with_suffix(".md").write_text(text + "\n")
    plot(report, stem.with_suffix(".png"))
    print()
    print(text)
    print(f"Written: {stem}.json, .md, .png")


if __name__ == "__main__":
    main()
