"""docker-compose.yml and ops/ (no Docker engine here): they parse, and every command they run
names a real module, Celery app and sub-command of this project."""
from __future__ import annotations

import importlib
import subprocess
import sys

import yaml

from conftest import REPO
from pipeline.config import load_config


def compose() -> dict:
    return yaml.safe_load((REPO / "docker-compose.yml").read_text())


def test_services_present():
    services = compose()["services"]
    assert {"redis", "worker", "worker-eu-west-1", "beat", "flower"} <= set(services)
    redis_cmd = " ".join(services["redis"]["command"])
    assert "--appendonly yes" in redis_cmd and "noeviction" in redis_cmd
    assert "--basic-auth" in " ".join(services["flower"]["command"])
    assert "demo" in services["s3"]["profiles"]


def test_every_trailpipe_command_is_real():
    commands = [s["command"] for s in compose()["services"].values() if s.get("command", [""])[0] == "trailpipe"]
    assert commands
    for command in commands:
        result = subprocess.run([sys.executable, "-m", "workers.cli", command[1], "--help"],
                                capture_output=True, text=True, timeout=60, cwd=REPO)
        assert result.returncode == 0, (command, result.stderr[-500:])
        for option in [part for part in command[2:] if part.startswith("--") or part == "-c"]:
            assert option in result.stdout, (command, option)


def test_every_celery_command_is_real():
    for name, service in compose()["services"].items():
        command = service.get("command")
        if not command or command[0] != "celery":
            continue
        assert command[1:3] == ["-A", "workers.app"], name
        module = importlib.import_module("workers.app")
        assert hasattr(module, "app"), name
        sub = command[3]
        result = subprocess.run([sys.executable, "-m", "celery", "-A", "workers.app", sub, "--help"],
                                capture_output=True, text=True, timeout=60, cwd=REPO)
        assert result.returncode == 0, (name, result.stderr[-500:])


def test_example_config_validates_and_regional_worker_serves_a_real_queue(monkeypatch):
    monkeypatch.setenv("TRAILPIPE_REDIS_URL_SECRET", "redis://127.0.0.1:6399/0")
    monkeypatch.setenv("PROD_TRAIL_SECRET_ACCESS_KEY", "x" * 40)
    config = load_config(REPO / "ops" / "trailpipe.example.yaml")
    assert [s.identifier for s in config.sources] == ["prod-org-trail", "eu-security-account"]
    queues = {s.queue_name for s in config.sources}
    assert queues == {"trailpipe.us-east-1", "trailpipe.eu-west-1"}
    worker = compose()["services"]["worker-eu-west-1"]["command"]
    assert worker[worker.index("-Q") + 1] in queues


def test_systemd_units_run_the_app():
    for unit in ("trailpipe-worker.service", "trailpipe-beat.service"):
        text = (REPO / "ops" / "systemd" / unit).read_text()
        assert "celery -A workers.app" in text and "TRAILPIPE_CONFIG=" in text


def test_prometheus_and_grafana_use_real_metric_names(make_runtime, bucket):
    import json
    import re

    from pipeline.metrics import TrailpipeCollector

    served = set()
    for family in TrailpipeCollector(make_runtime(bucket)).collect():
        served.add(family.name)
        served.add(family.name + "_total" if family.type == "counter" else family.name)
    dashboard = json.loads((REPO / "ops" / "grafana" / "trailpipe-dashboard.json").read_text())
    used = {name for panel in dashboard["panels"] for target in panel["targets"]
            for name in re.findall(r"trailpipe_[a-z0-9_]+", target["expr"])}
    assert used and used <= served, used - served
    prometheus = yaml.safe_load((REPO / "ops" / "prometheus.yml").read_text())
    assert prometheus["scrape_configs"][0]["job_name"] == "trailpipe"
