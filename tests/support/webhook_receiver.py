"""A real HTTP endpoint for webhook tests: verifies every delivery's signature like an operator's receiver would,
answers 500 to a first attempt when asked (to see the retry), and keeps what it accepted."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from cp_server.webhooks import signature


@dataclass
class Receiver:
    """A real HTTP endpoint that verifies every delivery like an operator's would."""

    secret: str = ""
    fail_first: bool = True
    always_fail: bool = False
    accepted: list[dict[str, Any]] = field(default_factory=list)
    attempts: dict[str, int] = field(default_factory=dict)
    refused: list[str] = field(default_factory=list)
    raw: list[tuple[str, bytes]] = field(default_factory=list)
    clock_skew_s: float = 0.0

    def handle(self, header: str | None, delivery: str, body: bytes) -> int:
        try:
            signature.verify(header, body, self.secret, now=time.time() + self.clock_skew_s)
        except signature.SignatureError as err:
            self.refused.append(str(err))
            return 400
        self.raw.append((header or "", body))
        self.attempts[delivery] = self.attempts.get(delivery, 0) + 1
        if self.always_fail or (self.fail_first and self.attempts[delivery] == 1):
            return 500
        self.accepted.append(json.loads(body))
        return 200


@contextlib.asynccontextmanager
async def serve_receiver() -> AsyncIterator[tuple[Receiver, str]]:
    """A receiver on a free loopback port: (its state, the URL to register)."""
    state = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            self.send_response(state.handle(self.headers.get(signature.HEADER), self.headers.get("X-Xcwl-Delivery", ""),
                                            body))
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state, f"http://127.0.0.1:{server.server_port}/hooks"
    finally:
        server.shutdown()
        server.server_close()
