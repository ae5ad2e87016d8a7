"""Flower out of the box: started against the test broker with a live worker, its dashboard
loaded in headless Chromium shows the worker and the trailpipe tasks."""
from __future__ import annotations

import shutil
import subprocess
import sys
import urllib.request

import pytest
from conftest import (
    REPO,
    celery_env,
    config_dict,
    shared_log_files,
    source_dict,
    start_celery,
    stop_process,
    upload,
    wait_for,
    write_config,
)

from pipeline.redis_server import free_port

pytestmark = pytest.mark.slow

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


def render(url: str, profile) -> str:
    """The page's DOM after its scripts ran (headless Chromium, no network beyond loopback)."""
    result = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={profile}", "--virtual-time-budget=8000", "--dump-dom", url],
        capture_output=True, text=True, timeout=90)
    return result.stdout


def reachable(url: str) -> bool:
    try:
        return urllib.request.urlopen(url, timeout=2).status == 200
    except OSError:
        return False


@pytest.mark.skipif(CHROMIUM is None, reason="no Chromium on this machine (Debian package 'chromium'); "
                                             ".ci/run installs it where apt-get works")
def test_flower_dashboard_shows_worker_and_tasks(tmp_path, redis_server, redis_client, moto_endpoint, s3, bucket):
    files = shared_log_files(account="510987654321")[:3]
    upload(s3, bucket, files)
    config_path = write_config(tmp_path / "c.yaml", config_dict(
        redis_server.url, [source_dict(bucket, moto_endpoint, identifier="flowered")]))
    port = free_port()
    flower = start_celery(["flower", f"--port={port}", "--address=127.0.0.1"], config_path, tmp_path / "flower.log")
    worker = start_celery(["worker", "--concurrency", "1", "--loglevel", "info", "--hostname", "flowerworker@%h"],
                          config_path, tmp_path / "worker.log")
    try:
        wait_for(lambda: reachable(f"http://127.0.0.1:{port}/"), timeout=60, what="Flower")
        wait_for(lambda: "ready." in (tmp_path / "worker.log").read_text(), timeout=60, what="the worker")
        # workers send no task events unless asked: Flower asks (enable_events, every 5 s)
        wait_for(lambda: "enabled by remote" in (tmp_path / "worker.log").read_text(), timeout=60,
                 what="Flower enabling the worker's task events")
        subprocess.run([sys.executable, "-m", "workers.cli", "discover", "-c", str(config_path)], check=True,
                       env=celery_env(config_path), capture_output=True, timeout=60, cwd=REPO)
        wait_for(lambda: int(redis_client.hget("trailpipe:src:flowered:stats", "objects_done") or 0) == 3,
                 timeout=60, what="the objects")
        workers_page = wait_for(lambda: (lambda dom: "flowerworker@" in dom and dom)(
            render(f"http://127.0.0.1:{port}/workers", tmp_path / "chrome1")), timeout=60, interval=2,
            what="the worker on Flower's dashboard")
        assert "flowerworker@" in workers_page
        tasks_page = wait_for(lambda: (lambda dom: "trailpipe.ingest_object" in dom and dom)(
            render(f"http://127.0.0.1:{port}/tasks", tmp_path / "chrome2")), timeout=60, interval=2,
            what="the tasks on Flower's tasks page")
        assert "trailpipe.discover" in tasks_page and "SUCCESS" in tasks_page
        assert "test-secret-value" not in tasks_page  # task arguments hold no secret
    finally:
        stop_process(worker)
        stop_process(flower)
