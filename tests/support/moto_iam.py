"""A moto server in a subprocess that enforces IAM: signatures are checked and every action
must be allowed by the caller's policies.

moto enforces IAM once ``INITIAL_NO_AUTH_ACTION_COUNT`` unauthenticated actions have been
served. The server starts with a large allowance (set up users, policies and buckets freely),
then ``enforce()`` sets it to 0 through moto's ``/moto-api/reset-auth``: from then on nothing
passes without valid credentials and a policy allowing it. (It runs in its own process, not as a
``pipeline.local_s3.LocalS3`` thread, because the setting is global to a moto process: enforcing
it in ours would close the session's shared moto server, which must stay open.)
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from pipeline.processes import stop_process
from pipeline.redis_server import free_port

ACCOUNT_ID = "123456789012"  # moto's default account
SETUP_ALLOWANCE = 100000


class IamEnforcingMoto:
    def __init__(self, log_path: Path):
        self.port = free_port()
        self.log_path = log_path
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30) -> IamEnforcingMoto:
        env = dict(os.environ, INITIAL_NO_AUTH_ACTION_COUNT=str(SETUP_ALLOWANCE))
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            env=env, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"{self.url}/moto-api/", timeout=1).read()
                return self
            except OSError:
                if self.process.poll() is not None:
                    break
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"moto server did not start; see {self.log_path}")

    def enforce(self) -> None:
        """From now on, every action needs valid credentials and a policy allowing it."""
        request = urllib.request.Request(f"{self.url}/moto-api/reset-auth", data=b"0", method="POST",
                                         headers={"Content-Type": "text/plain"})
        urllib.request.urlopen(request, timeout=5).read()

    def stop(self) -> None:
        stop_process(self.process)
