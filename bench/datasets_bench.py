"""Dataset catalog search through the API: p50/p95 latency over 10,000 datasets.

The portal service runs in its own process (uvicorn, the same app as in production), on a
database filled with N generated datasets (titles, descriptions and tags drawn from a fixed
vocabulary; a third public, the rest granted to one of 20 projects, a quarter with terms).
A client on the same machine sends each kind of catalog request R times, one at a time,
over one keep-alive connection, as an operator (sees everything) and as a member of two
projects (the visibility filter applies). Every search also writes its audit entry, as in
production.

Side by side, in the same server and interleaved with the searches, the baseline is the
portal's cheapest authenticated catalog read (``GET /api/flavors``): the ratio says what
the dataset search costs beyond a request's fixed cost. A second run with a small catalog
(``--small``, default 100 datasets) gives the ratio of 10,000 to 100 datasets.

The hub's token check is replaced by a fixed table of tokens (as in the unit tests): it is
the same for every endpoint and cached by the hub client, and it is not what this measures.

    .venv/bin/python -m bench.datasets_bench [--datasets 10000] [--small 100] [--repeat 200]
        [--database-url postgresql+psycopg://...]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, date, datetime
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tests.harness import free_port, wait_until  # noqa: E402

RESULTS_DIR = REPO / "bench" / "results"
PREFIX = "/services/portal/"
WORDS = (
    "vision",
    "speech",
    "text",
    "medical",
    "retail",
    "traffic",
    "satellite",
    "audio",
    "sensor",
    "genome",
    "climate",
    "finance",
    "legal",
    "chemistry",
    "robotics",
    "manufacturing",
    "energy",
    "agriculture",
    "ocean",
    "language",
)
TAGS = (
    "images",
    "tabular",
    "text",
    "audio",
    "video",
    "time-series",
    "classification",
    "segmentation",
    "detection",
    "translation",
    "personal-data",
    "synthetic",
    "benchmark",
    "geospatial",
)
QUERIES = {
    "browse (first page)": "datasets?limit=50",
    "one word": "datasets?q=satellite",
    "two words": "datasets?q=medical+images",
    "tag filter": "datasets?tag=personal-data",
    "word + tag": "datasets?q=climate&tag=time-series",
    "no match": "datasets?q=zzzzzz",
    "deep page": "datasets?limit=50&offset=2000",
}
TOKENS = {"t-operator": ("olivia", True), "t-member": ("bench-member", False)}


def fill(database_url: str, count: int, seed: int = 7) -> None:
    """A migrated database with ``count`` datasets, 20 projects and one member."""
    from aitestbed.portal import models
    from aitestbed.portal.db import make_engine, migrate, session_factory, transaction

    engine = make_engine(database_url)
    migrate(engine)
    rng = random.Random(seed)
    with transaction(session_factory(engine)) as session:
        projects = [
            models.Project(
                slug=f"project-{i:02d}",
                title=f"Project {i}",
                valid_from=date(2020, 1, 1),
                valid_until=date(2099, 12, 31),
            )
            for i in range(20)
        ]
        session.add_all(projects)
        session.add(models.Flavor(slug="cpu", display_name="CPU", cpu=1, memory="1Gi"))
        member = models.User(name="bench-member")
        session.add_all([member, models.User(name="olivia", is_operator=True)])
        session.flush()
        for project in projects[:2]:
            session.add(models.Membership(user_id=member.id, project_id=project.id))
        rows = []
        for i in range(count):
            words = rng.sample(WORDS, 3)
            public = i % 3 == 0
            rows.append(
                models.Dataset(
                    slug=f"ds-{i:05d}-{words[0]}",
                    title=f"{words[0].title()} {words[1]} collection {i}",
                    description=f"Data about {' and '.join(words)} gathered for study {i}. " * 3,
                    tags=rng.sample(TAGS, 3),
                    license="CC-BY-4.0",
                    version="1",
                    visibility="public" if public else "granted",
                    terms_version="1" if i % 4 == 0 else None,
                    terms_text="Terms." if i % 4 == 0 else "",
                    storage={"kind": "pvc", "claim": "datasets", "sub_path": f"ds-{i}"},
                    source="api",
                    enabled=True,
                )
            )
        session.add_all(rows)
        session.flush()
        session.add_all(
            models.DatasetGrant(dataset_id=row.id, project_id=projects[i % 20].id, source="api")
            for i, row in enumerate(rows)
            if row.visibility == "granted"
        )
    engine.dispose()


def serve(database_url: str, port: int) -> None:
    """The server process: the portal app with a fixed token table."""
    import uvicorn
    from aitestbed.portal.app import create_app
    from aitestbed.portal.auth import Identity
    from aitestbed.portal.db import make_engine

    class Tokens:
        async def resolve(self, token):
            entry = TOKENS.get(token)
            return Identity(entry[0], entry[1], frozenset()) if entry else None

    app = create_app(engine=make_engine(database_url), identity=Tokens(), prefix=PREFIX)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def measure(base: str, repeat: int) -> dict:
    """Per (user, query): p50/p95 in ms, and the baseline request measured in between."""
    results: dict = {}
    http = requests.Session()
    for token, (who, _) in TOKENS.items():
        headers = {"Authorization": f"token {token}"}
        for _ in range(10):  # warm up both paths
            http.get(base + "api/datasets?q=warm", headers=headers).raise_for_status()
            http.get(base + "api/flavors", headers=headers).raise_for_status()
        for name, path in QUERIES.items():
            timings, baseline, total = [], [], None
            for _ in range(repeat):
                started = time.perf_counter()
                response = http.get(base + "api/" + path, headers=headers)
                timings.append((time.perf_counter() - started) * 1000)
                response.raise_for_status()
                total = response.json()["total"]
                started = time.perf_counter()
                http.get(base + "api/flavors", headers=headers).raise_for_status()
                baseline.append((time.perf_counter() - started) * 1000)
            results[f"{who}: {name}"] = {
                "matches": total,
                "p50_ms": round(percentile(timings, 0.5), 2),
                "p95_ms": round(percentile(timings, 0.95), 2),
                "baseline_p50_ms": round(percentile(baseline, 0.5), 2),
                "baseline_p95_ms": round(percentile(baseline, 0.95), 2),
                "p50_ratio_to_baseline": round(
                    statistics.median(timings) / statistics.median(baseline), 2
                ),
            }
    return results


def run(count: int, repeat: int, database_url: str | None, work: Path) -> dict:
    url = database_url or f"sqlite:///{work / f'catalog-{count}.sqlite'}"
    if database_url:  # a fresh schema every run
        from sqlalchemy import create_engine, text

        engine = create_engine(database_url)
        with engine.begin() as connection:
            connection.execute(text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
        engine.dispose()
    started = time.perf_counter()
    fill(url, count)
    filled = time.perf_counter() - started
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "bench.datasets_bench", "--serve", url, "--port", str(port)],
        cwd=REPO,
    )
    base = f"http://127.0.0.1:{port}{PREFIX}"
    try:
        wait_until(lambda: _answers(base + "api/health"), timeout=60, what="the portal")
        return {
            "datasets": count,
            "fill_seconds": round(filled, 1),
            "results": measure(base, repeat),
        }
    finally:
        server.terminate()
        server.wait(timeout=30)


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=2).status_code == 200
    except requests.RequestException:
        return False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", type=int, default=10_000)
    parser.add_argument("--small", type=int, default=100, help="catalog size of the second run")
    parser.add_argument("--repeat", type=int, default=200)
    parser.add_argument("--database-url", help="PostgreSQL URL (its public schema is replaced)")
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.port)
        return
    with tempfile.TemporaryDirectory(prefix="aitestbed-dsbench-") as work:
        large = run(args.datasets, args.repeat, args.database_url, Path(work))
        small = run(args.small, args.repeat, args.database_url, Path(work))
    report = {
        "benchmark": "datasets",
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "load": os.getloadavg()},
        "database": "postgresql" if args.database_url else "sqlite",
        "repeat": args.repeat,
        "large": large,
        "small": small,
    }  # fmt: skip
    print(f"{'request':<36}{'matches':>8}{'p50 ms':>9}{'p95 ms':>9}{'base p50':>10}"
          f"{'x base':>8}{'x small':>9}")  # fmt: skip
    for key, row in large["results"].items():
        smaller = small["results"][key]
        print(
            f"{key:<36}{row['matches']:>8}{row['p50_ms']:>9}{row['p95_ms']:>9}"
            f"{row['baseline_p50_ms']:>10}{row['p50_ratio_to_baseline']:>8}"
            f"{row['p50_ms'] / smaller['p50_ms']:>9.2f}"
        )
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    out = RESULTS_DIR / f"datasets-{report['database']}-{int(time.time())}.json"
    out.write_text(json.dumps(report, indent=2))
    print(f"\nWritten to {out}")


if __name__ == "__main__":
    main()
