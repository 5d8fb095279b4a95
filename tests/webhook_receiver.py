"""A Slack-style webhook receiver on 127.0.0.1 for tests: records every POST body and can answer the first
requests with scripted failures (status codes, a stall past the client's timeout, a huge answer).

It behaves as the receiver docs/alerts.md asks for: every body it accepts is kept in ``accepted`` (with its
``Idempotency-Key`` header); ``received`` keeps the first body per key, the copies a retry sends are dropped."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

STALL_SECONDS = 1.5
HUGE_ANSWER_BYTES = 64 << 20


class WebhookReceiver:
    def __init__(self, script: tuple = ()):
        # e.g. (500, 503, 429, "stall", "huge") for the first requests: "stall" accepts the body but answers
        # only after STALL_SECONDS (a slow receiver: the sender times out not knowing it was accepted); "huge"
        # accepts it and answers 200 with a body of HUGE_ANSWER_BYTES.
        self.script = list(script)
        self.accepted: list[tuple[str | None, dict]] = []  # (idempotency key, body) of every accepted POST
        self.received: list[dict] = []      # the first accepted body per idempotency key, in arrival order
        self.requests = 0
        self.arrivals: list[float] = []     # time.time() of each body in ``received``
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                key = self.headers.get("Idempotency-Key")
                with receiver._lock:
                    receiver.requests += 1
                    step = receiver.script.pop(0) if receiver.script else 200
                    if step in (200, "stall", "huge"):
                        message = json.loads(body)
                        receiver.accepted.append((key, message))
                        if key is None or key not in {k for k, _ in receiver.accepted[:-1]}:
                            receiver.received.append(message)
                            receiver.arrivals.append(time.time())
                if step == "stall":
                    time.sleep(STALL_SECONDS)
                headers = {"Retry-After": "0"} if step == 429 else {}
                payload = b"ok" if step in (200, "stall") else b"error"
                try:
                    self.send_response(200 if step in ("stall", "huge") else step)
                    for k, v in headers.items():
                        self.send_header(k, v)
                    self.send_header("Content-Length", str(HUGE_ANSWER_BYTES if step == "huge" else len(payload)))
                    self.end_headers()
                    if step == "huge":  # written a MiB at a time: the receiver itself holds little
                        chunk = b"x" * (1 << 20)
                        for _ in range(HUGE_ANSWER_BYTES >> 20):
                            self.wfile.write(chunk)
                    else:
                        self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}/hooks/alerts"

    def __enter__(self) -> WebhookReceiver:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
