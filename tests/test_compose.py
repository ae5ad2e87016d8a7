"""docker-compose.yml and ops/ (no Docker engine here): they parse, and every command they run
names a real module, Celery app and sub-command of this project."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time

import pytest
import yaml
from conftest import REPO

from pipeline.config import load_config
from workers.launch import celery_command


def compose() -> dict:
    return yaml.safe_load((REPO / "docker-compose.yml").read_text())


def example_env() -> dict[str, str]:
    """.env.example as compose reads a .env file: KEY=VALUE lines, # comments."""
    env = {}
    for line in (REPO / ".env.example").read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            env[key.strip()] = value.strip()
    return env


_VAR = re.compile(r"\$(?:\$|\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}|([A-Za-z_][A-Za-z0-9_]*))")


def interpolate(value, env: dict[str, str]):
    """docker compose's interpolation: $$, $VAR, ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?error}."""
    if isinstance(value, dict):
        return {k: interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    if not isinstance(value, str):
        return value

    def replace(match: re.Match) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group(1) or match.group(4)
        operator, argument = match.group(2), match.group(3)
        present = name in env and (env[name] != "" or operator not in (":-", ":?"))
        if operator in ("?", ":?") and not present:
            raise AssertionError(f"compose would stop: {name}: {argument}")
        if operator in ("-", ":-") and not present:
            return argument
        return env.get(name, "")

    return _VAR.sub(replace, value)


def rendered(env: dict[str, str] | None = None) -> dict:
    """The compose file as `docker compose --profile demo config` renders it with the example .env."""
    return interpolate(compose(), example_env() if env is None else env)["services"]


def service_env(service: dict, env: dict[str, str]) -> dict[str, str]:
    """What a container's environment holds: the .env file (env_file), then `environment`."""
    return {**env, **{k: str(v) for k, v in (service.get("environment") or {}).items()}}


def secrets_of(env: dict[str, str]) -> list[str]:
    return [value for key, value in env.items() if re.search("PASSWORD|SECRET", key) and len(value) >= 6]


def test_services_present():
    services = compose()["services"]
    assert {"redis", "worker", "worker-eu-west-1", "beat", "flower", "metrics", "s3", "s3-seed"} <= set(services)
    redis_cmd = " ".join(services["redis"]["command"])
    assert "--appendonly yes" in redis_cmd and "noeviction" in redis_cmd and "--maxmemory " in redis_cmd
    assert "FLOWER_BASIC_AUTH" in services["flower"]["environment"]
    assert "demo" in services["s3"]["profiles"] and "demo" in services["s3-seed"]["profiles"]


def test_compose_renders_with_only_the_example_env():
    services = rendered()
    for name, service in services.items():
        assert "${" not in json.dumps(service), name
    with pytest.raises(AssertionError, match="REDIS_PASSWORD"):
        rendered({k: v for k, v in example_env().items() if k != "REDIS_PASSWORD"})


def test_no_secret_on_any_command_line():
    env = example_env()
    secrets = secrets_of(env)
    assert env["REDIS_PASSWORD"] in secrets and env["FLOWER_PASSWORD"] in secrets
    for name, service in rendered().items():
        lines = json.dumps([service.get("command"), (service.get("healthcheck") or {}).get("test")])
        for secret in secrets:
            assert secret not in lines, (name, "a secret on a command line: `ps` shows it")


def test_published_on_loopback_only_by_default():
    published = [(name, port) for name, service in rendered().items() for port in service.get("ports", [])]
    assert {name for name, _ in published} == {"flower", "metrics", "prometheus"}
    assert all(str(port).startswith("127.0.0.1:") for _, port in published), published


def test_every_long_running_service_has_a_healthcheck():
    for name, service in rendered().items():
        if service.get("restart") == "no":
            continue  # one-shot
        test = service.get("healthcheck", {}).get("test")
        assert test and test[0] in ("CMD", "CMD-SHELL"), name
        if test[:3] == ["CMD", "python", "-c"]:
            compile(test[3], f"{name} healthcheck", "exec")


@pytest.mark.parametrize("config_file", [None, "./ops/trailpipe.example.yaml"])
def test_every_trailpipe_service_loads_its_config_with_the_env_compose_gives(monkeypatch, config_file):
    """The old files crash-looped: the example config needed variables nothing set."""
    env = example_env()
    if config_file:
        env["TRAILPIPE_CONFIG_FILE"] = config_file
    checked = 0
    for name, service in rendered(env).items():
        if "TRAILPIPE_CONFIG" not in (service.get("environment") or {}):
            continue
        mounts = dict(volume.split(":")[:2][::-1] for volume in service["volumes"])
        host_path = REPO / mounts[service["environment"]["TRAILPIPE_CONFIG"]]
        for key in list(os.environ):
            if key.startswith(("TRAILPIPE_", "PROD_")):
                monkeypatch.delenv(key)
        for key, value in service_env(service, env).items():
            monkeypatch.setenv(key, value)
        config = load_config(host_path)
        assert config.redis_url_value().startswith(f"redis://:{env['REDIS_PASSWORD']}@redis:6379/"), name
        checked += 1
    assert checked >= 6


def test_redis_command_and_healthcheck_really_run(tmp_path):
    """The redis service's shell command and healthcheck, run here with this machine's redis-server."""
    import shutil
    import stat

    import redis as redis_py

    from pipeline.redis_server import free_port

    server_binary = shutil.which("redis-server") or str(REPO / ".venv" / "bin" / "redis-server")
    service = rendered()["redis"]
    env = service_env(service, example_env())
    port = free_port()
    conf = tmp_path / "redis.conf"
    shell = service["command"][2].replace("/tmp/redis.conf", str(conf)).replace(
        "exec redis-server", f"exec {server_binary}") + f" --port {port} --bind 127.0.0.1 --dir {tmp_path} --save ''"
    process = subprocess.Popen(["sh", "-c", shell], env={"PATH": os.environ["PATH"], **env},
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        client = redis_py.Redis(port=port, password=env["REDIS_PASSWORD"])
        deadline = time.monotonic() + 15
        while True:
            try:
                assert client.ping()
                break
            except redis_py.ConnectionError:
                assert time.monotonic() < deadline and process.poll() is None, "redis did not start"
                time.sleep(0.1)
        assert stat.S_IMODE(conf.stat().st_mode) == 0o600
        # Full, it refuses writes (trailpipe waits and retries) rather than evicting state or events.
        assert client.config_get("maxmemory")["maxmemory"] == str(1024 ** 3)
        assert client.config_get("maxmemory-policy")["maxmemory-policy"] == "noeviction"
        with pytest.raises(redis_py.AuthenticationError):
            redis_py.Redis(port=port).ping()
        check = service["healthcheck"]["test"][1].replace("redis-cli ping", f"redis-cli -p {port} ping")
        path = f"{REPO / '.venv' / 'bin'}:{os.environ['PATH']}"
        assert subprocess.run(["sh", "-c", check], env={"PATH": path, **env}, timeout=10).returncode == 0
        bad = dict(env, REDIS_PASSWORD="wrong")
        assert subprocess.run(["sh", "-c", check], env={"PATH": path, **bad}, timeout=10,
                              capture_output=True).returncode != 0
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_flower_takes_its_login_from_the_environment(monkeypatch):
    from flower.command import apply_env_options
    from tornado.options import options

    service = rendered()["flower"]
    monkeypatch.setenv("FLOWER_BASIC_AUTH", service["environment"]["FLOWER_BASIC_AUTH"])
    apply_env_options()
    env = example_env()
    assert options.basic_auth == [f"{env['FLOWER_USER']}:{env['FLOWER_PASSWORD']}"]


def test_demo_seed_fills_the_demo_bucket(moto_endpoint, s3):
    command = rendered()["s3-seed"]["command"]
    assert command[:4] == ["python", "-m", "workers.demo", "seed"]
    result = subprocess.run([sys.executable, *command[1:4], moto_endpoint], capture_output=True, text=True,
                            timeout=120, cwd=REPO)
    assert result.returncode == 0, result.stderr
    demo = yaml.safe_load((REPO / "ops" / "trailpipe.demo.yaml").read_text())["sources"][0]
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=demo["bucket"])["Contents"]]
    assert sum(key.endswith(".json.gz") and "CloudTrail/" in key for key in keys) == 24


def test_image_is_runtime_only():
    text = (REPO / "Dockerfile").read_text()
    stages = text.split("\nFROM ")[1:]
    assert len(stages) == 2, "a build stage and a runtime stage"
    assert "[dev]" not in text and "dev" not in re.findall(r"\.\[(\w+)\]", text)
    runtime = stages[1]
    assert "COPY --from=build /wheels" in runtime and "USER trailpipe" in runtime
    assert "COPY pipeline" not in runtime  # only the built wheel goes in


def every_command() -> list[tuple[str, list[str]]]:
    """Each service's command and healthcheck command, as argument lists."""
    commands = []
    for name, service in rendered().items():
        if service.get("command"):
            commands.append((name, service["command"]))
        test = (service.get("healthcheck") or {}).get("test") or []
        if test[:1] == ["CMD"]:
            commands.append((name, test[1:]))
        elif test[:1] == ["CMD-SHELL"] and test[1].startswith("celery "):
            commands.append((name, test[1].split()))
    return commands


def options_of(command: list[str]) -> list[str]:
    return [part.split("=", 1)[0] for part in command if part.startswith("--") or part in ("-c", "-Q", "-d")]


def test_every_trailpipe_command_is_real():
    commands = [(name, c) for name, c in every_command() if c[0] == "trailpipe"]
    assert {name for name, _ in commands} >= {"metrics", "beat"}
    for name, command in commands:
        result = subprocess.run([sys.executable, "-m", "workers.cli", command[1], "--help"],
                                capture_output=True, text=True, timeout=60, cwd=REPO)
        assert result.returncode == 0, (name, command, result.stderr[-500:])
        for option in options_of(command[2:]):
            assert option in result.stdout, (name, command, option)


def test_every_celery_command_is_real():
    commands = [(name, c) for name, c in every_command() if c[0] == "celery"]
    assert {name for name, _ in commands} >= {"worker", "worker-eu-west-1", "beat", "flower"}
    helps: dict[str, str] = {}
    for name, command in commands:
        assert command[1:3] == ["-A", "workers.app"], name
        sub = command[3]
        if sub not in helps:
            result = subprocess.run(celery_command(sub, "--help"),
                                    capture_output=True, text=True, timeout=60, cwd=REPO)
            assert result.returncode == 0, (name, result.stderr[-500:])
            helps[sub] = result.stdout
        if sub == "inspect":
            from celery.worker.control import Panel

            assert command[4] in Panel.data, (name, command)  # a real remote-control command
        for option in options_of(command[4:]):
            if sub == "flower":  # tornado options, not in --help
                import flower.options  # noqa: F401  (defines them)
                from tornado.options import options

                assert option[2:] in options._options, (name, command, option)
            else:
                assert option in helps[sub], (name, command, option)


def test_example_config_validates_and_regional_worker_serves_a_real_queue(monkeypatch):
    monkeypatch.setenv("TRAILPIPE_REDIS_URL", "redis://127.0.0.1:6399/0")  # the documented variable
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


def test_the_wheel_the_image_installs_holds_every_module_and_script(tmp_path):
    """The Dockerfile installs a built wheel, not the source tree: every module and Lua script
    of the checkout must be in it."""
    import zipfile

    result = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q",
                             "-w", str(tmp_path), str(REPO)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    (wheel,) = tmp_path.glob("trailpipe-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    tracked = subprocess.run(["git", "ls-files", "pipeline", "workers"], cwd=REPO, capture_output=True, text=True,
                             check=True).stdout.split()
    assert tracked, "run from a git checkout"
    missing = [path for path in tracked if path not in names]
    assert missing == []
