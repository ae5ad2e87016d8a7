"""A small EC2 instance metadata service (IMDSv2 only) on loopback.

``PUT /latest/api/token`` hands out a session token; with that token in
``X-aws-ec2-metadata-token``, ``GET /latest/meta-data/iam/security-credentials/`` names the
role and ``GET .../<role>`` returns its credentials JSON. Every credentials fetch hands out a
new key pair (``AKIAIMDS000000000001``, ``...02``...), so a test sees refreshes as new keys.
"""
from __future__ import annotations

import datetime
import json
import secrets
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

CREDENTIALS_PATH = "/latest/meta-data/iam/security-credentials/"


class IMDSServer:
    def __init__(self, role: str = "trailpipe-reader", lifetime: datetime.timedelta = datetime.timedelta(hours=6)):
        self.role = role
        self.lifetime = lifetime
        self.tokens: set[str] = set()
        self.requests: list[tuple[str, str]] = []  # (method, path)
        self.issued: list[dict] = []  # every credentials document served
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def _reply(self, status: int, body: str, content_type: str = "text/plain") -> None:
                data = body.encode()
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_PUT(self):
                with server.lock:
                    server.requests.append(("PUT", self.path))
                if self.path != "/latest/api/token" or not self.headers.get("X-aws-ec2-metadata-token-ttl-seconds"):
                    return self._reply(400, "Bad Request")
                token = secrets.token_urlsafe(24)
                with server.lock:
                    server.tokens.add(token)
                self._reply(200, token)

            def do_GET(self):
                with server.lock:
                    server.requests.append(("GET", self.path))
                    authorised = self.headers.get("X-aws-ec2-metadata-token") in server.tokens
                if not authorised:
                    return self._reply(401, "Unauthorized")
                if self.path == CREDENTIALS_PATH:
                    return self._reply(200, server.role)
                if self.path == CREDENTIALS_PATH + server.role:
                    return self._reply(200, json.dumps(server._issue()), "application/json")
                self._reply(404, "Not Found")

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    @property
    def credential_fetches(self) -> int:
        with self.lock:
            return len(self.issued)

    def _issue(self) -> dict:
        now = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
        with self.lock:
            number = len(self.issued) + 1
            document = {
                "Code": "Success",
                "LastUpdated": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "Type": "AWS-HMAC",
                "AccessKeyId": f"ASIAIMDS{number:012d}",
                "SecretAccessKey": f"imds-secret-{number}-{secrets.token_hex(8)}",
                "Token": f"imds-session-token-{number}",
                "Expiration": (now + self.lifetime).strftime("%Y-%m-%dT%H:%M:%SZ"),
            }
            self.issued.append(document)
        return document

    def start(self) -> IMDSServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join(timeout=5)
