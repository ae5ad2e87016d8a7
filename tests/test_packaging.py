"""The wheel as a user installs it: built without setuptools warnings, with its Lua scripts, and
usable from a runtime-only install (a venv without the dev extra, as the Docker image has):
`trailpipe demo` there says what to install instead of a traceback."""
from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest
from conftest import REPO

# The runtime venv is kept between runs (its dependencies take minutes to install): the wheel
# is reinstalled each time, the dependencies again only when pyproject.toml's list changes.
RUNTIME_VENV = REPO / ".venv" / "runtime-only"


def run(*command, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([str(c) for c in command], capture_output=True, text=True, stdin=subprocess.DEVNULL,
                          **kwargs)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("wheel")
    built = run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--disable-pip-version-check", "-w", out, REPO,
                timeout=600)
    if built.returncode != 0 and "No matching distribution found for setuptools" in built.stdout + built.stderr:
        pytest.skip("building the wheel needs setuptools from a package index, which cannot be reached")
    assert built.returncode == 0, built.stdout + built.stderr
    (path,) = out.glob("trailpipe-*.whl")
    return path, built.stdout + built.stderr


def test_wheel_builds_without_setuptools_warnings_and_holds_the_lua_scripts(wheel):
    path, log = wheel
    assert "SetuptoolsDeprecationWarning" not in log and "is absent from the `packages`" not in log, log
    names = set(zipfile.ZipFile(path).namelist())
    scripts = {p.name for p in (REPO / "pipeline" / "store" / "lua").glob("*.lua")}
    assert scripts and {f"pipeline/store/lua/{name}" for name in scripts} <= names
    metadata = zipfile.ZipFile(path).read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    assert "License-Expression: Apache-2.0" in metadata


@pytest.mark.slow
def test_demo_from_a_runtime_only_install_says_what_to_install(wheel, tmp_path):
    path, _ = wheel
    python = RUNTIME_VENV / "bin" / "python"
    dependencies = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    stamp = RUNTIME_VENV / "dependencies.sha256"
    wanted = hashlib.sha256("\n".join(dependencies).encode()).hexdigest()
    if not python.exists() or not stamp.exists() or stamp.read_text() != wanted:
        created = run(sys.executable, "-m", "venv", "--clear", RUNTIME_VENV, timeout=300)
        assert created.returncode == 0, created.stderr
        installed = run(python, "-m", "pip", "install", "--disable-pip-version-check", "-q", path, timeout=1200)
        if installed.returncode != 0 and "No matching distribution" in installed.stderr:
            pytest.skip("the runtime dependencies cannot be installed: no package index reachable")
        assert installed.returncode == 0, installed.stderr
        stamp.write_text(wanted)
    else:
        installed = run(python, "-m", "pip", "install", "--disable-pip-version-check", "-q", "--no-deps",
                        "--force-reinstall", path, timeout=600)
        assert installed.returncode == 0, installed.stderr
    assert run(python, "-m", "pip", "check", timeout=120).returncode == 0
    # Runtime only: none of the dev extra's packages.
    probe = run(python, "-c", "import importlib.util as u; print([m for m in ('moto', 'pytest', 'mypy') "
                              "if u.find_spec(m)])", timeout=60)
    assert probe.stdout.strip() == "[]", probe.stdout + probe.stderr

    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "TRAILPIPE_CONFIG", "TRAILPIPE_REDIS_URL")}
    result = run(RUNTIME_VENV / "bin" / "trailpipe", "demo", cwd=tmp_path, env=env, timeout=120)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "pip install 'moto[server]>=5'" in result.stderr
    assert not (tmp_path / ".trailpipe").exists()  # refused before it started anything
    # The installed package works: a config validates from another folder (paths relative to it).
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "secret").write_text("s" * 40)
    (tmp_path / "conf" / "c.yaml").write_text(
        "sources:\n  - identifier: a\n    bucket: my-trail-bucket\n    region: us-east-1\n"
        "    auth: {method: access_key, access_key_id: AKIAEXAMPLE, secret_access_key_file: secret}\n")
    valid = run(RUNTIME_VENV / "bin" / "trailpipe", "validate", "-c", "conf/c.yaml", cwd=tmp_path, env=env,
                timeout=120)
    assert valid.returncode == 0 and "OK, 1 source(s): a" in valid.stdout, valid.stdout + valid.stderr
