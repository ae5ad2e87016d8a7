"""A local S3 API on loopback: moto's server in a thread, for ``trailpipe demo``, the tests and the
benchmark (moto is the ``demo`` extra's and the dev extra's, imported only when one starts)."""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from pipeline.redis_server import free_port

if TYPE_CHECKING:
    from moto.server import ThreadedMotoServer


class LocalS3:
    """moto's ``ThreadedMotoServer`` on ``127.0.0.1`` (a free port unless told), without werkzeug's
    access log lines. ``with LocalS3() as s3: s3.url`` or ``LocalS3().start()`` ... ``.stop()``."""

    host = "127.0.0.1"

    def __init__(self, port: int | None = None):
        self.port = port or free_port()
        self._server: ThreadedMotoServer | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    endpoint = url  # what a source's endpoint_url names

    def start(self) -> LocalS3:
        from moto.server import ThreadedMotoServer  # noqa: PLC0415  (the demo/test dependency)

        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no access log line per request
        server = ThreadedMotoServer(ip_address=self.host, port=self.port, verbose=False)
        server.start()
        self._server = server
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None

    def __enter__(self) -> LocalS3:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
