"""A Slack-style webhook receiver on 127.0.0.1 for tests: records every POST body and can answer the first
requests with scripted failures (status codes, or a stall past the client's timeout)."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class WebhookReceiver:
    def __init__(self, script: tuple = ()):
        self.script = list(script)          # e.g. (500, 503, 429, "stall") for the first requests
        self.received: list[dict] = []      # bodies answered 200, in arrival order
        self.requests = 0
        self.arrivals: list[float] = []     # time.time() of each accepted body
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with receiver._lock:
                    receiver.requests += 1
                    step = receiver.script.pop(0) if receiver.script else 200
                if step == "stall":
                    time.sleep(1.5)
                    step = 200
                    stalled = True
                else:
                    stalled = False
                if step == 200 and not stalled:
                    with receiver._lock:
                        receiver.received.append(json.loads(body))
                        receiver.arrivals.append(time.time())
                headers = {"Retry-After": "0"} if step == 429 else {}
                payload = b"ok" if step == 200 else b"error"
                try:
                    self.send_response(step)
                    for k, v in headers.items():
                        self.send_header(k, v)
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
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
