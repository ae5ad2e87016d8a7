"""ops/ as a deployment uses it: the alert rules' unit tests (promtool), prometheus.yml, compose
and the systemd units consistent with each other and with the commands they run."""
from __future__ import annotations

import configparser
import re
import shutil
import subprocess
import sys

import pytest
import yaml
from conftest import REPO

from workers.launch import celery_command

OPS = REPO / "ops"
UNITS = OPS / "systemd"
PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(PROMTOOL is None, reason="promtool not installed (Debian: apt-get install "
                                                              "prometheus; .ci/run installs it as root)")


@needs_promtool
def test_alert_rules_pass_their_promtool_unit_tests():
    result = subprocess.run([PROMTOOL, "test", "rules", "trailpipe-alerts.test.yml"], cwd=OPS,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


@needs_promtool
def test_prometheus_config_is_valid_and_loads_the_rules():
    result = subprocess.run([PROMTOOL, "check", "config", "prometheus.yml"], cwd=OPS,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    rules = yaml.safe_load((OPS / "trailpipe-alerts.yml").read_text())["groups"][0]["rules"]
    assert f"{len(rules)} rules found" in result.stdout


def test_every_alert_of_the_readme_has_a_rule_on_a_real_metric(make_runtime, bucket):
    from pipeline.metrics import TrailpipeCollector

    served = {"up", "trailpipe_part_restarts_total"}  # Prometheus' own; `trailpipe run`'s part restarts
    for family in TrailpipeCollector(make_runtime(bucket)).collect():
        served.add(family.name + "_total" if family.type == "counter" else family.name)
    rules = yaml.safe_load((OPS / "trailpipe-alerts.yml").read_text())["groups"][0]["rules"]
    used = {name for rule in rules for name in re.findall(r"\b(trailpipe_[a-z0-9_]+|up)\b", rule["expr"])}
    assert used <= served, used - served
    for metric in ("trailpipe_source_up", "trailpipe_last_discovery_timestamp_seconds", "trailpipe_ingest_lag_seconds",
                   "trailpipe_newest_object_age_seconds", "trailpipe_objects_failed",
                   "trailpipe_integrity_violations_total", "trailpipe_part_restarts_total"):
        assert metric in used, metric
    tested = (OPS / "trailpipe-alerts.test.yml").read_text()
    for rule in rules:
        assert f"alertname: {rule['alert']}" in tested, rule["alert"]


def unit(name: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str
    parser.read(UNITS / name)
    return parser


def test_systemd_units_prometheus_and_compose_agree():
    names = sorted(p.name for p in UNITS.glob("*.service"))
    assert names == ["trailpipe-beat.service", "trailpipe-metrics.service", "trailpipe-run.service",
                     "trailpipe-worker.service"]
    readme = (REPO / "README.md").read_text()
    for name in names:
        service = unit(name)["Service"]
        # What the README's steps create: the user, the venv, the config; systemd makes the state folder.
        assert service["User"] == "trailpipe" and service["StateDirectory"] == "trailpipe", name
        assert service["WorkingDirectory"] == "/var/lib/trailpipe", name
        assert service["ExecStart"].startswith("/opt/trailpipe/.venv/bin/"), name
        assert "Environment=TRAILPIPE_CONFIG=/etc/trailpipe/trailpipe.yaml" in (UNITS / name).read_text()
        assert name in readme, f"{name} is not in the README's steps"
    for step in ("useradd --system", "/opt/trailpipe/.venv", "/etc/trailpipe/trailpipe.yaml",
                 "/etc/trailpipe/secrets.env", "systemctl enable --now", "trailpipe-alerts.yml"):
        assert step in readme, step
    # The metrics port: the unit's, compose's service and Prometheus' target.
    metrics_unit = unit("trailpipe-metrics.service")["Service"]["ExecStart"].split()
    port = metrics_unit[metrics_unit.index("--port") + 1]
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())["services"]
    command = compose["metrics"]["command"]
    assert command[command.index("--port") + 1] == port
    prometheus = yaml.safe_load((OPS / "prometheus.yml").read_text())
    targets = {job["job_name"]: job["static_configs"][0]["targets"] for job in prometheus["scrape_configs"]}
    assert targets["trailpipe"] == [f"metrics:{port}"]
    host, flower_port = targets["flower"][0].split(":")
    assert host in compose and f"--port={flower_port}" in compose[host]["command"]
    # Compose runs Prometheus with this very file and the rules where rule_files says.
    mounts = dict(v.rsplit(":", 1)[0].split(":", 1) for v in compose["prometheus"]["volumes"] if v.startswith("./"))
    assert mounts["./ops/prometheus.yml"] == "/etc/prometheus/prometheus.yml"
    for rules in prometheus["rule_files"]:
        assert mounts[f"./ops/{rules}"] == f"/etc/prometheus/{rules}"
    flower = next(job for job in prometheus["scrape_configs"] if job["job_name"] == "flower")
    secret = flower["basic_auth"]["password_file"]
    assert secret == f"/run/secrets/{compose['prometheus']['secrets'][0]}"


def test_systemd_units_run_real_commands():
    for name in sorted(p.name for p in UNITS.glob("*.service")):
        command = unit(name)["Service"]["ExecStart"].split()
        tool = command[0].rsplit("/", 1)[1]
        if tool == "trailpipe":
            args = [sys.executable, "-m", "workers.cli", command[1], "--help"]
            options = [part for part in command[2:] if part.startswith("-")]
        else:
            assert tool == "celery" and command[1:3] == ["-A", "workers.app"], name
            args = celery_command(command[3], "--help")
            options = [part for part in command[4:] if part.startswith("-")]
        result = subprocess.run(args, capture_output=True, text=True, timeout=120, cwd=REPO)
        assert result.returncode == 0, (name, result.stderr[-500:])
        for option in options:
            assert option in result.stdout, (name, option)


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
def test_systemd_units_verify():
    result = subprocess.run(["systemd-analyze", "verify", "--man=no", *map(str, sorted(UNITS.glob("*.service")))],
                            capture_output=True, text=True, timeout=120)
    problems = [line for line in (result.stdout + result.stderr).splitlines()
                if line.strip() and "is not executable: No such file or directory" not in line]  # not installed here
    assert problems == [], problems
