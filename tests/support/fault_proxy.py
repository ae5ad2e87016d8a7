"""A fault-injecting HTTP front for the moto S3 server, for the chaos test.

It forwards each request to the upstream server and, for a share of them, answers with a fault
instead: 500 InternalError, 503 SlowDown, a connection reset, a slow response, or a body cut
short (the headers promise more bytes than are sent). Counts what it did, per kind.
"""
from __future__ import annotations

import http.client
import random
import socket
import struct
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SLOWDOWN = (b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code>'
            b"<Message>Please reduce your request rate.</Message></Error>")
INTERNAL = (b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>InternalError</Code>'
            b"<Message>We encountered an internal error. Please try again.</Message></Error>")
FAULTS = ("error500", "slowdown503", "reset", "slow", "truncated")


class FaultProxy:
    def __init__(self, upstream: str, fault_rate: float = 0.10, slow_seconds: float = 1.5, seed: int = 1):
        host, port = upstream.removeprefix("http://").split(":")
        self.upstream = (host, int(port))
        self.fault_rate = fault_rate
        self.slow_seconds = slow_seconds
        self.random = random.Random(seed)
        self.lock = threading.Lock()
        self.counts: Counter[str] = Counter()
        self.enabled = True
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet
                pass

            def _handle(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                fault = proxy._pick()
                if fault == "reset":
                    # RST instead of FIN: the client sees "connection reset by peer".
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    self.connection.close()
                    self.close_connection = True
                    return
                if fault in ("error500", "slowdown503"):
                    payload = INTERNAL if fault == "error500" else SLOWDOWN
                    self.send_response(500 if fault == "error500" else 503)
                    self.send_header("Content-Type", "application/xml")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                    return
                if fault == "slow":
                    time.sleep(proxy.slow_seconds)
                status, headers, data = proxy._forward(self.command, self.path, self.headers, body)
                if fault == "truncated" and len(data) > 64:
                    self.send_response(status)
                    for name, value in headers:
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(data[: len(data) // 2])
                    self.wfile.flush()
                    self.connection.shutdown(socket.SHUT_RDWR)
                    self.close_connection = True
                    return
                self.send_response(status)
                for name, value in headers:
                    self.send_header(name, value)
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = _handle

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request, client_address):  # injected resets are expected
                pass

        self.server = Server(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def _pick(self) -> str | None:
        with self.lock:
            self.counts["requests"] += 1
            if not self.enabled or self.random.random() >= self.fault_rate:
                return None
            fault = self.random.choice(FAULTS)
            self.counts[fault] += 1
            return fault

    def _forward(self, method, path, headers, body):
        connection = http.client.HTTPConnection(*self.upstream, timeout=60)
        try:
            forward = {k: v for k, v in headers.items() if k.lower() not in ("connection", "keep-alive")}
            connection.request(method, path, body=body, headers=forward)
            response = connection.getresponse()
            data = response.read()
            out = [(k, v) for k, v in response.getheaders()
                   if k.lower() not in ("connection", "transfer-encoding", "keep-alive", "content-length", "server", "date")]
            out.append(("Content-Length", str(len(data))))
            return response.status, out, data
        finally:
            connection.close()

    @property
    def faults(self) -> int:
        return sum(v for k, v in self.counts.items() if k != "requests")

    def start(self) -> FaultProxy:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
