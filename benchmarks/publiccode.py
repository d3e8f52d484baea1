"""publiccode.yml figures: N generated files read by the ``publiccode`` connector from a local
server, parsed, validated, mapped and published (first run), then read again with nothing
changed (second run: nothing may be published).

    .venv/bin/python -m benchmarks.publiccode                     # 10,000 files, both sources
    .venv/bin/python -m benchmarks.publiccode --files 2000        # quicker
    .venv/bin/python -m benchmarks.publiccode --source catalogue  # the Open Catalog API only
    .venv/bin/python -m benchmarks.publiccode --profile           # cProfile of the first run

The files are variations of ``tests/fixtures/publiccode/open-zaak.v0.7.yml`` (their own name
and url, one of 200 suppliers, usedBy names of which one in three is a known municipality). The
server runs in a process of its own; ``urls`` reads one file per request (8 at a time),
``catalogue`` reads an Open Catalog API ``/software`` list of 100 files a page. Files carry an
``ETag`` and answer 304 to a matching ``If-None-Match``, so the ``urls`` second run is the
conditional one (no file parsed). The runs go
through the connectors role's runner (:meth:`ConnectorRunner.run_connector`) on the embedded
broker and PostgreSQL. The machine is shared, so the figure that counts is CPU per file: this
process's CPU time (``time.process_time``: HTTP client, parse, validate, map, publish, the
fingerprint store's client side), besides the wall-clock rate. ``pure`` is parse + validate +
map alone, in this process, per file.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import hashlib
import multiprocessing
import pstats
import shutil
import tempfile
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from aiohttp import web

from benchmarks.common import describe_machine, machine_info
from connectors.publiccode.mapping import Matching, map_document
from connectors.publiccode.schema import load_yaml
from hub.adapters.kafka import KafkaEventLog, ensure_topics
from hub.adapters.postgres.connectors import PostgresConnectorStore
from hub.adapters.postgres.engine import create_engine, migrate
from hub.bootstrap import connector_runner
from hub.embedded import provision
from hub.settings import ConnectorSettings, Settings
from tests.support.publiccode_fake import FIXTURES

FLOOR_FILES_PER_S = 500.0
ORG = "org-benchmark"
SUPPLIERS = 200
KNOWN = {f"Gemeente {i:03d}": f"gm{i:04d}" for i in range(100)}


def repository(i: int) -> str:
    """The repository of generated file ``i`` (its ``url``; the catalogue lists it there)."""
    return f"https://git.example.org/leverancier-{i % SUPPLIERS}/pakket-{i:05d}"


def generate(n: int) -> list[bytes]:
    """``n`` valid publiccode.yml files, each its own software."""
    template = (FIXTURES / "open-zaak.v0.7.yml").read_text(encoding="utf-8")
    tail = template.split("platforms:", 1)[1]
    tail = (
        "platforms:"
        + tail.split("usedBy:", 1)[0]
        + "developmentStatus:"
        + tail.split("developmentStatus:", 1)[1]
    )
    files = []
    for i in range(n):
        s = i % SUPPLIERS
        used = "".join(f"  - Gemeente {(i + k) % 300:03d}\n" for k in range(3))
        text = (
            f'publiccodeYmlVersion: "0.7"\nname: Pakket {i:05d}\n'
            f"url: {repository(i)}.git\n"
            f"softwareVersion: 1.{i % 20}.0\nreleaseDate: 2025-01-{1 + i % 28:02d}\n"
            f"organisation:\n  uri: https://leverancier-{s}.example.nl\n  name: Leverancier {s}\n"
            f"{tail.replace('platforms:', 'usedBy:' + chr(10) + used + 'platforms:', 1)}"
        )
        files.append(text.encode())
    return files


def serve(n: int, conn: Connection) -> None:
    """The child process: ``/f/<i>.yml`` and ``/software`` (100 a page, ``links.next``)."""

    async def main() -> None:
        files = generate(n)
        texts = [f.decode() for f in files]
        etags = [f'"{hashlib.sha256(f).hexdigest()[:16]}"' for f in files]

        async def one(request: web.Request) -> web.Response:
            """A file with its ETag; 304 to a matching If-None-Match, as a forge's raw host."""
            i = int(request.match_info["i"])
            if request.headers.get("If-None-Match") == etags[i]:
                return web.Response(status=304, headers={"ETag": etags[i]})
            return web.Response(body=files[i], content_type="text/yaml", headers={"ETag": etags[i]})

        async def software(request: web.Request) -> web.Response:
            start = int(request.query.get("page[after]", "-1")) + 1
            page = [
                {"id": str(i), "url": repository(i), "publiccodeYml": texts[i]}
                for i in range(start, min(start + 100, n))
            ]
            more = start + 100 < n
            return web.json_response(
                {"data": page, "links": {"next": f"?page[after]={start + 99}" if more else None}}
            )

        app = web.Application()
        app.router.add_get("/f/{i}.yml", one)
        app.router.add_get("/software", software)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        conn.send(f"http://127.0.0.1:{runner.addresses[0][1]}")
        await asyncio.Event().wait()

    asyncio.run(main())


def pure(n: int) -> float:
    """CPU seconds per file of parse + validate + map alone."""
    files = generate(n)
    matching = Matching(gemeenten=KNOWN)
    map_document(load_yaml(files[0], 1 << 20), None, matching)  # the validator compiles once
    cpu = time.process_time()
    for raw in files:
        map_document(load_yaml(raw, 1 << 20), None, matching)
    return (time.process_time() - cpu) / n


async def runs(
    settings: Settings, bootstrap: str, database_url: str, config: dict[str, Any], n: int, profile: bool
) -> dict[str, Any]:
    engine = create_engine(database_url, pool_size=4)
    await ensure_topics(bootstrap, settings.kafka)
    log = KafkaEventLog(bootstrap, settings.kafka)
    await log.start()
    runner = connector_runner(settings, engine, log)
    store = PostgresConnectorStore(engine)
    out: dict[str, Any] = {}
    try:
        record = await store.create(
            kind="publiccode", organisatie=ORG, schedule_seconds=5, enabled=True, config=config
        )
        for name in ("first", "second"):
            profiler = cProfile.Profile() if profile and name == "first" else None
            started, cpu = time.perf_counter(), time.process_time()
            if profiler:
                profiler.enable()
            await runner.run_connector(await store.get(record.id))
            if profiler:
                profiler.disable()
                pstats.Stats(profiler).sort_stats("cumulative").print_stats(40)
            took, cpu = time.perf_counter() - started, time.process_time() - cpu
            after = await store.get(record.id)
            assert after.last_error is None, after.last_error
            counts = after.last_counts or {}
            out[name] = {
                "seconds": round(took, 2),
                "per_s": round(n / took),
                "cpu_ms_per_file": round(1000 * cpu / n, 3),
                "published": counts.get("published"),
                "invalid": counts.get("invalid"),
            }
    finally:
        await asyncio.to_thread(runner.close)
        await log.stop()
        await engine.dispose()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--source", choices=("urls", "catalogue", "both"), default="both")
    parser.add_argument("--profile", action="store_true", help="print a cProfile of the first run")
    args = parser.parse_args()
    n = args.files
    info = machine_info()
    pure_cpu = pure(min(n, 2000))
    data_dir = Path(tempfile.mkdtemp(prefix="koppelhub-bench-publiccode-"))
    settings = Settings(data_dir=data_dir, connectors=ConnectorSettings(allow_networks=["127.0.0.1/32"]))
    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe()
    server = ctx.Process(target=serve, args=(n, child), daemon=True)
    server.start()
    url = parent.recv()
    infra = provision(settings)
    aliases = dict(KNOWN)
    sources = ("urls", "catalogue") if args.source == "both" else (args.source,)
    results: dict[str, dict[str, Any]] = {}
    try:
        migrate(infra.database_url)
        for source in sources:
            config: dict[str, Any] = {"aliases": aliases}
            if source == "urls":
                config["urls"] = [f"{url}/f/{i}.yml" for i in range(n)]
            else:
                config["catalogue"] = f"{url}/software"
            results[source] = asyncio.run(
                runs(settings, infra.kafka_bootstrap, infra.database_url, config, n, args.profile)
            )
    finally:
        server.terminate()
        infra.close()
        shutil.rmtree(data_dir, ignore_errors=True)
    print(describe_machine(info))
    rate = f"{1 / pure_cpu:.0f} files/s on one core"
    print(f"parse + validate + map alone: {1000 * pure_cpu:.3f} ms CPU per file ({rate})")
    for source, r in results.items():
        first, second = r["first"], r["second"]
        print(
            f"{source:9s} first run:  {n} files, {first['published']} events published,"
            f" {first['invalid']} files with unmatched usedBy names, {first['seconds']} s ="
            f" {first['per_s']} files/s (floor {FLOOR_FILES_PER_S:.0f}),"
            f" {first['cpu_ms_per_file']} ms CPU per file"
        )
        print(
            f"{source:9s} second run: {second['published']} published, {second['seconds']} s ="
            f" {second['per_s']} files/s, {second['cpu_ms_per_file']} ms CPU per file"
        )


if __name__ == "__main__":
    main()
