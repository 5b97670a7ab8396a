"""The webhook receiver of the events benchmark, run as its own process so it never competes with
the code measured for the interpreter lock.

`python -m bench.events.receiver PORT`: every POST is answered 200 and its arrival noted under
the id it carries (a webhook's record id, or a baseline request's key), as `time.monotonic()`,
which on Linux is one clock for every process of the machine. `GET /arrivals` returns what
arrived, `GET /count` how many, and `DELETE /arrivals` forgets them.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

_arrivals: list[tuple[str, float]] = []
_lock = threading.Lock()


def arrival_key(body: dict[str, Any]) -> str:
    """A webhook names its record in `data.id`; a baseline request carries its own `key`."""
    data = body.get("data")
    if isinstance(data, dict) and "id" in data:
        return str(data["id"])
    return str(body.get("key", ""))


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body are two writes: without this the second waits for a delayed ACK.
    disable_nagle_algorithm = True

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("content-length") or 0))
        arrived = time.monotonic()
        key = arrival_key(json.loads(body))
        with _lock:
            _arrivals.append((key, arrived))
        self._answer(b"ok")

    def do_GET(self) -> None:
        with _lock:
            found: Any = len(_arrivals) if self.path == "/count" else list(_arrivals)
        self._answer(json.dumps(found).encode())

    def do_DELETE(self) -> None:
        with _lock:
            _arrivals.clear()
        self._answer(b"[]")

    def _answer(self, content: bytes) -> None:
        self.send_response(200)
        self.send_header("Content-Length", str(len(content)))
        self.end_headers()
        self.wfile.write(content)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def main(port: int) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    server.serve_forever()


if __name__ == "__main__":
    main(int(sys.argv[1]))
