"""The gateway's small HTTP server: `/health` (`/health/live`, `/health/ready`), `/metrics`
(Prometheus) and the local sync hub.

Standard-library `ThreadingHTTPServer`: a gateway box is small and this keeps memory low.
Every error becomes a 4xx/5xx with a JSON reason, never a traceback.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import structlog
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

log = structlog.get_logger("gateway.http")

MAX_BODY = 16 * 1024 * 1024

# (status, content_type, body)
Response = tuple[int, str, bytes]
PostHandler = Callable[[bytes, dict[str, str]], Response]


def json_response(status: int, doc: Any) -> Response:
    return status, "application/json", json.dumps(doc, default=str).encode()


class GatewayHTTP:
    def __init__(self, host: str, port: int, registry: CollectorRegistry, health: Callable[[], tuple[bool, dict[str, Any]]],
                 posts: dict[str, PostHandler] | None = None,
                 live: Callable[[], tuple[bool, dict[str, Any]]] | None = None) -> None:
        """`health`: readiness and the full status document (`/health`, `/health/ready`);
        `live`: liveness only (`/health/live`; defaults to `health`)."""
        self.registry = registry
        self.health = health
        self.live = live or health
        self.posts = posts or {}
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, fmt: str, *args: Any) -> None:  # structured logs instead
                pass

            def _send(self, resp: Response) -> None:
                status, ctype, body = resp
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:  # noqa: N802
                path = self.path.split("?", 1)[0]
                if path in ("/health", "/healthz", "/health/ready"):
                    ok, doc = outer.health()
                    self._send(json_response(200 if ok else 503, doc))
                elif path == "/health/live":
                    ok, doc = outer.live()
                    self._send(json_response(200 if ok else 503, doc))
                elif path == "/metrics":
                    self._send((200, CONTENT_TYPE_LATEST, generate_latest(outer.registry)))
                else:
                    self._send(json_response(404, {"detail": "not found"}))

            def do_POST(self) -> None:  # noqa: N802
                path = self.path.split("?", 1)[0]
                handler = outer.posts.get(path)
                if handler is None:
                    self._send(json_response(404, {"detail": "not found"}))
                    return
                declared = self.headers.get("Content-Length") or "0"
                if not declared.isdigit():  # negative or chunked: rfile.read would read to EOF
                    self._send(json_response(411 if "Transfer-Encoding" in self.headers else 400,
                                             {"detail": "a body needs a Content-Length of 0.."
                                                        f"{MAX_BODY} bytes (no chunked transfer)"}))
                    return
                length = int(declared)
                if length > MAX_BODY:
                    self._send(json_response(413, {"detail": f"body larger than {MAX_BODY} bytes"}))
                    return
                body = self.rfile.read(length)
                try:
                    resp = handler(body, {k.lower(): v for k, v in self.headers.items()})
                except Exception as e:  # noqa: BLE001 - answer, log, keep serving
                    log.exception("http_handler_failed", path=path)
                    resp = json_response(500, {"detail": f"internal error: {type(e).__name__}"})
                self._send(resp)

        self.server = ThreadingHTTPServer((host, port), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, name="gateway-http", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
