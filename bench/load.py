"""The load generator, run as its own process: N concurrent keep-alive clients for a fixed time.

Prints one JSON object with throughput, latency percentiles and any errors on stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

from bench.workload import APPS, OPERATIONS, Request, Workload

ERROR_SAMPLES = 5


class Client(Protocol):
    async def send(self, request: Request) -> tuple[int, bytes]: ...

    async def close(self) -> None: ...


class RawClient:
    """One HTTP/1.1 keep-alive connection spoken over asyncio streams.

    Much cheaper per request than a general client, so less of the shared CPU goes to the load
    generator and more to the server being measured.
    """

    def __init__(self, base_url: str, token: str) -> None:
        parts = urlsplit(base_url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.head = f"Host: {self.host}:{self.port}\r\nAuthorization: Bearer {token}\r\n"
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def send(self, request: Request) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        lines = f"{request.method} {request.path} HTTP/1.1\r\n{self.head}"
        if request.body is not None:
            lines += f"Content-Type: application/json\r\nContent-Length: {len(request.body)}\r\n"
        self.writer.write(lines.encode("latin-1") + b"\r\n" + (request.body or b""))
        head = await self.reader.readuntil(b"\r\n\r\n")
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        headers = {}
        for line in header_lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        if "content-length" in headers:
            body = await self.reader.readexactly(int(headers["content-length"]))
        elif headers.get("transfer-encoding", "").lower() == "chunked":
            body = await self._chunked()
        else:
            body = await self.reader.read()
            headers["connection"] = "close"
        if headers.get("connection", "").lower() == "close":
            await self.close()
        return int(status_line.split(" ", 2)[1]), body

    async def _chunked(self) -> bytes:
        assert self.reader is not None
        body = bytearray()
        while True:
            size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                await self.reader.readuntil(b"\r\n")
                return bytes(body)
            body.extend(await self.reader.readexactly(size))
            await self.reader.readexactly(2)

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            with contextlib.suppress(OSError):
                await self.writer.wait_closed()
        self.reader = self.writer = None


class HttpxClient:
    """The same through httpx, to cross-check the raw client's figures."""

    def __init__(self, base_url: str, token: str) -> None:
        import httpx

        self.client = httpx.AsyncClient(
            base_url=base_url,
            headers={"Authorization": f"Bearer {token}"},
            limits=httpx.Limits(max_connections=1, max_keepalive_connections=1),
            timeout=60,
        )

    async def send(self, request: Request) -> tuple[int, bytes]:
        headers = {"Content-Type": "application/json"} if request.body is not None else None
        response = await self.client.request(
            request.method, request.path, content=request.body, headers=headers
        )
        return response.status_code, response.content

    async def close(self) -> None:
        await self.client.aclose()


@dataclass
class Tally:
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    warmup_requests: int = 0
    error_samples: list[str] = field(default_factory=list)
    last_done: float = 0.0

    def error(self, text: str) -> None:
        self.errors += 1
        if len(self.error_samples) < ERROR_SAMPLES:
            self.error_samples.append(text[:300])


async def worker(
    client: Client, workload: Workload, measure_from: float, stop_at: float, tally: Tally
) -> None:
    while (started := time.perf_counter()) < stop_at:
        request = workload.next()
        try:
            status, body = await client.send(request)
            problem = None if 200 <= status < 300 else f"{status} {body.decode(errors='replace')}"
        except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
            await client.close()
            problem = f"{type(exc).__name__}: {exc}"
        done = time.perf_counter()
        if started < measure_from:
            tally.warmup_requests += 1
            continue
        tally.last_done = max(tally.last_done, done)
        if problem is None:
            tally.latencies.append(done - started)
        else:
            tally.error(f"{request.method} {request.path}: {problem}")


def percentile(sorted_values: list[float], fraction: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, round(fraction * len(sorted_values)) - 1))
    return sorted_values[index]


def summary(tally: Tally, measure_from: float) -> dict[str, Any]:
    latencies = sorted(tally.latencies)
    elapsed = max(tally.last_done - measure_from, 1e-9)
    ms = 1000.0
    return {
        "requests": len(latencies),
        "errors": tally.errors,
        "served": len(latencies) + tally.errors + tally.warmup_requests,
        "error_samples": tally.error_samples,
        "seconds": round(elapsed, 3),
        "rps": round(len(latencies) / elapsed, 1),
        "p50_ms": round(percentile(latencies, 0.50) * ms, 2),
        "p90_ms": round(percentile(latencies, 0.90) * ms, 2),
        "p99_ms": round(percentile(latencies, 0.99) * ms, 2),
        "max_ms": round(latencies[-1] * ms, 2) if latencies else None,
        "mean_ms": round(sum(latencies) / len(latencies) * ms, 2) if latencies else None,
    }


async def run(args: argparse.Namespace) -> dict[str, Any]:
    ids: list[str] = json.loads(Path(args.ids).read_text()) if args.ids else []
    kind = RawClient if args.client == "raw" else HttpxClient
    clients: list[Client] = [kind(args.url, args.token) for _ in range(args.concurrency)]
    tally = Tally()
    start = time.perf_counter()
    measure_from = start + args.warmup
    stop_at = measure_from + args.duration
    try:
        await asyncio.gather(
            *(
                worker(
                    client, Workload(args.app, args.op, ids, seed=i), measure_from, stop_at, tally
                )
                for i, client in enumerate(clients)
            )
        )
    finally:
        for client in clients:
            await client.close()
    return {"app": args.app, "op": args.op, "client": args.client, **summary(tally, measure_from)}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.load", description=__doc__)
    parser.add_argument("--url", required=True, help="the server's base URL")
    parser.add_argument("--token", required=True)
    parser.add_argument("--app", choices=APPS, required=True)
    parser.add_argument("--op", choices=OPERATIONS, required=True)
    parser.add_argument("--ids", help="a JSON file with the record ids to read")
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--client", choices=("raw", "httpx"), default="raw")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    result = asyncio.run(run(parse_args(argv)))
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
