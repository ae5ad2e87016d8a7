"""Smoke test of the benchmark harness (ops/bench/run.py -> workers/bench.py) at a tiny size:
every phase runs end to end and reports consistent figures. No timing is asserted."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conftest import REPO

pytestmark = pytest.mark.slow


def test_benchmark_runs_every_phase_at_a_tiny_size(tmp_path):
    out = tmp_path / "bench.json"
    result = subprocess.run(
        [sys.executable, str(REPO / "ops" / "bench" / "run.py"), "--files", "3", "--min-records", "100",
         "--max-records", "150", "--concurrency", "1", "--listing-objects", "200", "--listing-new", "3",
         "--big-mb", "2", "--json-out", str(out), "--work-dir", str(tmp_path / "work"), "--quiet"],
        capture_output=True, text=True, timeout=120, cwd=REPO)
    assert result.returncode == 0, result.stderr[-3000:]
    figures = json.loads(out.read_text())

    events = figures["data"]["events"]
    assert 300 <= events <= 450 and figures["data"]["files"] == 3
    phases = figures["phases"]
    assert set(phases) == {"floor", "naive", "trailpipe_x1"}
    for phase in phases.values():
        assert phase["events"] == events  # every record written once, in every phase
        assert phase["events_per_s"] > 0 and phase["cpu_s_per_million_events"] > 0
        assert 0 <= phase["redis_cpu_seconds"] <= phase["cpu_seconds"]  # (clock ticks: may round to 0)
    trailpipe = phases["trailpipe_x1"]
    assert trailpipe["objects_done"] == 3 and trailpipe["objects_failed"] == 0
    assert trailpipe["worker_peak_rss_mb"] >= trailpipe["worker_idle_rss_mb"] > 0
    assert figures["stream_fields_match"]  # floor and naive write what trailpipe writes
    assert {"trailpipe_x1/naive events_per_s", "trailpipe_x1/floor cpu_per_event"} <= set(figures["ratios"])

    (listing,) = figures["listing"]
    assert listing["objects"] == 200 and listing["first"]["enqueued"] == 200
    assert listing["nothing_new"]["enqueued"] == 0
    assert listing["nothing_new"]["list_requests"] == listing["nothing_new"]["partitions"] == 9
    assert listing["new"]["enqueued"] == 3

    memory = figures["memory"]
    assert memory["objects_done"] == 2 and memory["records"] > 1000
    assert memory["peak_rss_mb"] >= memory["warm_idle_rss_mb"] > 0

    assert "target nothing new = one LIST per partition: MET" in result.stdout
    assert "Traceback" not in (tmp_path / "work" / "worker-1.log").read_text()
