"""A webhook receiver for tests: a small threaded HTTP server on a free loopback port that keeps
every request, answers with scripted status codes, and can hold requests open until released."""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from metacrm.runtime.webhooks import verify


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)

    def signed_by(self, secret: str) -> bool:
        return verify(secret, self.headers.get("x-metacrm-signature", ""), self.body)


class Receiver:
    def __init__(self, statuses: Iterable[int] = ()) -> None:
        # Answers for the next requests, in order; 200 once they are used up.
        self.statuses = deque(statuses)
        self.received: list[Received] = []
        self.changed = threading.Condition()
        # While set, each request waits on `release` before it is answered.
        self.holding = False
        self.release = threading.Event()
        self.held = threading.Event()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/hook"

    def _answer(self, request: Received) -> int:
        with self.changed:
            self.received.append(request)
            status = self.statuses.popleft() if self.statuses else 200
            holding = self.holding
            self.changed.notify_all()
        if holding:
            self.held.set()
            self.release.wait(60)
        return status

    def wait_for(self, predicate: Callable[[list[Received]], bool], timeout: float = 30) -> bool:
        deadline = time.monotonic() + timeout
        with self.changed:
            while not predicate(self.received):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self.changed.wait(remaining)
            return True

    def snapshot(self) -> list[Received]:
        with self.changed:
            return list(self.received)

    def close(self) -> None:
        self.release.set()
        self._server.shutdown()
        self._server.server_close()


def _handler(receiver: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Headers and body go out as two writes; without this the second waits for a delayed
        # ACK (~40 ms a request).
        disable_nagle_algorithm = True

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length") or 0))
            headers = {k.lower(): v for k, v in self.headers.items()}
            status = receiver._answer(Received(self.path, headers, body))
            answer = b"ok" if status < 300 else b"receiver says no"
            try:
                self.send_response(status)
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)
            except OSError:
                pass  # the sender is gone (a killed worker)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


@contextmanager
def receiving(statuses: Iterable[int] = ()) -> Iterator[Receiver]:
    receiver = Receiver(statuses)
    try:
        yield receiver
    finally:
        receiver.close()
