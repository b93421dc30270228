"""Object store throughput: put and get of many small and a few large objects.

Runs on the local folder store and on S3 (moto's server, started here on 127.0.0.1, so
the figures measure loopline + s3fs + HTTP on loopback, not a real network)::

    .venv/bin/python bench/objects.py            # 1,000 x 4 KiB and 10 x 64 MiB
    .venv/bin/python bench/objects.py --quick    # 100 x 4 KiB and 2 x 64 MiB
    .venv/bin/python bench/objects.py --json     # machine-readable

Small objects go up as bytes; large ones as streams (multipart on S3) and come back with
``get``. Every object read is compared with what was written.
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import os
import socket
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import asdict, dataclass

from loopline.config import S3Settings
from loopline.store.objects import ObjectStore, open_object_store

KiB = 1024
MiB = 1024 * KiB


@dataclass
class Result:
    store: str
    workload: str
    objects: int
    object_bytes: int
    put_seconds: float
    get_seconds: float

    @property
    def total_mb(self) -> float:
        return self.objects * self.object_bytes / 1e6

    def as_dict(self) -> dict[str, object]:
        out: dict[str, object] = asdict(self)
        out.update(
            put_mb_per_s=round(self.total_mb / self.put_seconds, 1),
            get_mb_per_s=round(self.total_mb / self.get_seconds, 1),
            put_objects_per_s=round(self.objects / self.put_seconds, 1),
            get_objects_per_s=round(self.objects / self.get_seconds, 1),
        )
        return out


def run_workload(
    store: ObjectStore, name: str, workload: str, count: int, size: int, stream: bool
) -> Result:
    payloads = [os.urandom(size) for _ in range(min(count, 4))]
    keys = [f"bench/{workload}/{i:05d}" for i in range(count)]

    started = time.perf_counter()
    for i, key in enumerate(keys):
        data = payloads[i % len(payloads)]
        store.put(key, io.BytesIO(data) if stream else data)
    put_seconds = time.perf_counter() - started

    started = time.perf_counter()
    for i, key in enumerate(keys):
        if store.get(key) != payloads[i % len(payloads)]:
            raise SystemExit(f"{name}: object {key} came back different")
    get_seconds = time.perf_counter() - started

    for key in keys:
        store.delete(key)
    return Result(name, workload, count, size, put_seconds, get_seconds)


@contextmanager
def local_store(folder: str | None) -> Iterator[ObjectStore]:
    with tempfile.TemporaryDirectory(prefix="loopline-bench-", dir=folder) as root:
        yield open_object_store(os.path.join(root, "objects"))


@contextmanager
def s3_store() -> Iterator[ObjectStore]:
    try:
        import boto3
        from moto.server import ThreadedMotoServer
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise SystemExit(f"The S3 benchmark needs moto[server] and boto3 ({exc.name})") from exc
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        settings = S3Settings(
            endpoint_url=f"http://127.0.0.1:{port}",
            region="us-east-1",
            access_key_id="bench",
            secret_access_key="bench",
        )
        bucket = f"bench-{uuid.uuid4().hex[:12]}"
        boto3.client(
            "s3",
            endpoint_url=settings.endpoint_url,
            region_name=settings.region,
            aws_access_key_id="bench",
            aws_secret_access_key="bench",
        ).create_bucket(Bucket=bucket)
        yield open_object_store(f"s3://{bucket}/bench", s3=settings)
    finally:
        server.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="100 small and 2 large objects")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument(
        "--stores", default="local,s3", help="comma-separated: local, s3 (default: both)"
    )
    parser.add_argument("--dir", default=None, help="parent folder of the local store")
    args = parser.parse_args(argv)

    small = 100 if args.quick else 1000
    large = 2 if args.quick else 10
    factories: dict[str, Callable[[], AbstractContextManager[ObjectStore]]] = {
        "local": lambda: local_store(args.dir),
        "s3 (moto)": s3_store,
    }
    wanted = {s.strip() for s in args.stores.split(",")}
    results: list[Result] = []
    for name, factory in factories.items():
        if name.split()[0] not in wanted:
            continue
        with factory() as store:
            results.append(run_workload(store, name, "4 KiB", small, 4 * KiB, False))
            results.append(run_workload(store, name, "64 MiB", large, 64 * MiB, True))

    if args.json:
        json.dump([r.as_dict() for r in results], sys.stdout, indent=2)
        print()
        return 0

    from rich.console import Console
    from rich.table import Table

    table = Table(title="loopline object stores: put + get throughput")
    for column in ("store", "size", "objects"):
        table.add_column(column)
    for column in ("put MB/s", "put obj/s", "get MB/s", "get obj/s"):
        table.add_column(column, justify="right")
    for r in results:
        d = r.as_dict()
        table.add_row(
            r.store,
            r.workload,
            f"{r.objects:,}",
            f"{d['put_mb_per_s']:,}",
            f"{d['put_objects_per_s']:,}",
            f"{d['get_mb_per_s']:,}",
            f"{d['get_objects_per_s']:,}",
        )
    Console().print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
