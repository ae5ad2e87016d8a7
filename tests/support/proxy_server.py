"""A real forward HTTP proxy requiring basic auth: ``proxy.py`` (PyPI package ``proxy.py``)
run as a subprocess on a free loopback port, its access log in a file."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from pipeline.processes import stop_process


def proxy_py_available() -> bool:
    try:
        import proxy  # noqa: F401, PLC0415
    except ImportError:
        return False
    return True


class ForwardProxy:
    def __init__(self, directory: Path, username: str, password: str):
        self.directory = directory
        self.username = username
        self.password = password
        self.log_path = directory / "proxy.log"
        self.port: int | None = None
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 20) -> ForwardProxy:
        self.directory.mkdir(parents=True, exist_ok=True)
        port_file = self.directory / "port"
        port_file.unlink(missing_ok=True)
        # HOME: proxy.py keeps a ~/.proxy directory; keep it in the test's directory.
        env = dict(os.environ, HOME=str(self.directory))
        for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY", "all_proxy"):
            env.pop(name, None)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "proxy", "--hostname", "127.0.0.1", "--port", "0",
             "--port-file", str(port_file), "--basic-auth", f"{self.username}:{self.password}",
             "--threaded", "--num-workers", "1", "--num-acceptors", "1",
             "--log-level", "INFO", "--log-file", str(self.log_path)],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=str(self.directory))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if port_file.exists() and port_file.read_text().strip():
                self.port = int(port_file.read_text().strip())
                return self
            if self.process.poll() is not None:
                break
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"proxy.py did not start; see {self.log_path}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def wait_for_log(self, text: str, timeout: float = 10, count: int = 1) -> None:
        """Until ``text`` is in the proxy's log ``count`` times."""
        deadline = time.monotonic() + timeout
        while self.log().count(text) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"{text!r} not in the proxy's log:\n{self.log()}")
            time.sleep(0.05)

    def stop(self) -> None:
        stop_process(self.process)


PROXY_USER = "tp-proxy-user"
PROXY_PASSWORD = "pr0xy/p@ss:w0rd%Zq7"  # URL-special characters on purpose


def proxy_settings(proxy: ForwardProxy, password: str = PROXY_PASSWORD) -> dict:
    """The ``proxy:`` block of a source going through ``proxy``."""
    return {"host": "127.0.0.1", "port": proxy.port, "username": proxy.username, "password": password}


def start_or_skip(directory: Path, username: str = PROXY_USER, password: str = PROXY_PASSWORD) -> ForwardProxy:
    import pytest  # noqa: PLC0415

    if not proxy_py_available():
        pytest.skip("the forward proxy of these tests is the PyPI package proxy.py "
                    "(pip install proxy.py; it is in trailpipe's dev extra)")
    return ForwardProxy(directory, username, password).start()
