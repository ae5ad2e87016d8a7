"""CloudTrail's ListPublicKeys on loopback (moto's cloudtrail does not implement it).

Speaks the real wire protocol (AWS JSON 1.1, ``X-Amz-Target: CloudTrail_20131101.ListPublicKeys``),
so boto3 serializes, signs and parses as it would against AWS. Each key has a validity period;
a request gets the keys valid at some point of [StartTime, EndTime], one per page (so paging is
exercised). Requests without a SigV4 Authorization header are refused.
"""
from __future__ import annotations

import base64
import json
import threading
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

TARGET = "com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101.ListPublicKeys"


class CloudTrailKeysAPI:
    def __init__(self):
        self.keys: list[dict] = []  # {der, fingerprint, start, end} (datetimes)
        self.requests: list[dict] = []  # {access_key, region, start, end, token}
        api = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _reply(self, status: int, doc: dict) -> None:
                data = json.dumps(doc).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/x-amz-json-1.1")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self):  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))) or b"{}")
                auth = self.headers.get("Authorization", "")
                if not auth.startswith("AWS4-HMAC-SHA256 Credential="):
                    return self._reply(403, {"__type": "AccessDeniedException", "message": "not signed"})
                if self.headers.get("X-Amz-Target") != TARGET:
                    return self._reply(400, {"__type": "UnknownOperationException", "message": "no"})
                scope = auth.split("Credential=", 1)[1].split(",", 1)[0].split("/")
                start, end = body.get("StartTime"), body.get("EndTime")
                api.requests.append({"access_key": scope[0], "region": scope[2], "start": start, "end": end,
                                     "token": body.get("NextToken")})
                valid = [k for k in api.keys
                         if (end is None or k["start"].timestamp() <= end)
                         and (start is None or k["end"].timestamp() >= start)]
                index = int(body.get("NextToken") or 0)
                page = valid[index:index + 1]
                doc = {"PublicKeyList": [{"Value": base64.b64encode(k["der"]).decode(),
                                          "ValidityStartTime": k["start"].timestamp(),
                                          "ValidityEndTime": k["end"].timestamp(),
                                          "Fingerprint": k["fingerprint"]} for k in page]}
                if index + 1 < len(valid):
                    doc["NextToken"] = str(index + 1)
                return self._reply(200, doc)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def add_key(self, der: bytes, fingerprint: str, start: datetime, end: datetime) -> None:
        self.keys.append({"der": der, "fingerprint": fingerprint, "start": start, "end": end})

    def __enter__(self) -> CloudTrailKeysAPI:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
