"""Smoke test of the benchmark harness (ops/bench/run.py -> ops/bench/harness.py) at a tiny size:
every phase runs end to end and reports consistent figures. No timing is asserted."""
from __future__ import annotations

import ast
import json
import subprocess
import sys

import pytest
from conftest import REPO

ROUTING = {"event", "event_id", "event_name", "event_time", "source", "object", "account", "region"}


def test_the_naive_collector_carries_none_of_trailpipes_code():
    """The baseline is what a user runs instead: only boto3, redis, orjson and gzip, and short."""
    path = REPO / "ops" / "bench" / "naive_collector.py"
    tree = ast.parse(path.read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            imported.add((node.module or "").split(".")[0])
    assert imported == {"gzip", "boto3", "orjson", "redis"}
    code_lines = [line for line in path.read_text().splitlines()[1:] if line.strip()]
    assert len(code_lines) <= 20
    shown = subprocess.run([sys.executable, str(REPO / "ops" / "bench" / "run.py"), "--show-naive"],
                           capture_output=True, text=True, timeout=60, cwd=REPO)
    assert shown.returncode == 0 and shown.stdout == path.read_text()


@pytest.mark.slow
def test_benchmark_runs_every_phase_at_a_tiny_size(tmp_path):
    out = tmp_path / "bench.json"
    result = subprocess.run(
        [sys.executable, str(REPO / "ops" / "bench" / "run.py"), "--files", "3", "--min-records", "100",
         "--max-records", "150", "--concurrency", "2", "--processes", "1", "--listing-objects", "200",
         "--listing-new", "3", "--big-mb", "2", "--small-files", "9", "--small-records", "3", "--s3-delay-ms", "20",
         "--backfill-files", "9", "--json-out", str(out), "--work-dir", str(tmp_path / "work"), "--quiet"],
        capture_output=True, text=True, timeout=300, cwd=REPO)
    assert result.returncode == 0, result.stderr[-3000:]
    figures = json.loads(out.read_text())

    events = figures["data"]["events"]
    assert 300 <= events <= 450 and figures["data"]["files"] == 3
    phases = figures["phases"]
    large = {"floor", "naive", "naive_unpipelined", "trailpipe_x2", "trailpipe_x2_ecs_ocsf", "trailpipe_x2_event_only"}
    small = {"small_naive", "small_trailpipe", "latency_naive", "latency_trailpipe", "backfill"}
    assert set(phases) == large | small
    for name, phase in phases.items():
        # every record written once, in every phase
        assert phase["events"] == (events if name in large else 27 if name != "backfill" else 27), name
        assert phase["events_per_s"] > 0 and phase["cpu_s_per_million_events"] > 0
        assert 0 <= phase["redis_cpu_seconds"] <= phase["cpu_seconds"]  # (clock ticks: may round to 0)
    for name in ("trailpipe_x2", "trailpipe_x2_ecs_ocsf", "small_trailpipe", "latency_trailpipe"):
        objects = 3 if name.startswith("trailpipe") else 9
        assert phases[name]["objects_done"] == objects and phases[name]["objects_failed"] == 0
        # The peak includes the idle sample of the same processes: never below it.
        assert phases[name]["worker_peak_rss_mb"] >= phases[name]["worker_idle_rss_mb"] > 0
        assert phases[name]["pool"] == "threads" and phases[name]["processes"] == 1
    for name in ("small_naive", "small_trailpipe", "latency_naive", "latency_trailpipe", "backfill"):
        assert phases[name]["objects"] == 9 and phases[name]["objects_per_s"] > 0
    assert figures["small_data"]["s3_delay_ms"] == 20 and figures["latency_measured_ms"] >= 20
    fields = figures["stream_fields"]
    assert set(fields["floor"]) == ROUTING  # the floor writes the routing fields, nothing derived
    assert set(fields["naive"]) == {"event", "object"}
    assert set(fields["trailpipe_x2"]) == ROUTING | {"display_name", "category"}
    assert set(fields["trailpipe_x2_ecs_ocsf"]) == ROUTING | {"display_name", "category", "ecs", "ocsf"}
    assert fields["trailpipe_x2_event_only"] == ["event"]
    sizes = phases["trailpipe_x2"]["stream_field_bytes"]
    assert set(sizes) == ROUTING | {"display_name", "category"} and sizes["event"] > sizes["region"] > 0
    assert (phases["trailpipe_x2_event_only"]["stream_bytes_per_event"]
            < phases["trailpipe_x2"]["stream_bytes_per_event"])
    assert {"trailpipe_x2/naive events_per_s", "trailpipe_x2/floor cpu_per_event",
            "trailpipe_x2_ecs_ocsf/naive events_per_s", "small_trailpipe/small_naive objects_per_s",
            "latency_trailpipe/latency_naive objects_per_s",
            "latency_trailpipe/small_trailpipe objects_per_s"} <= set(figures["ratios"])

    normalize = figures["normalize"]
    assert normalize["ecs_ocsf_fields_us"] > normalize["default_fields_us"] > 0

    (listing,) = figures["listing"]
    assert listing["objects"] == 200 and listing["first"]["enqueued"] == 200
    assert listing["nothing_new"]["enqueued"] == 0
    assert listing["nothing_new"]["list_requests"] == listing["nothing_new"]["partitions"] == 9
    assert listing["new"]["enqueued"] == 3

    memory = figures["memory"]
    assert memory["objects_done"] == 2 and memory["records"] > 1000
    assert memory["peak_rss_mb"] >= memory["warm_idle_rss_mb"] > 0

    assert "target nothing new = one LIST per partition: MET" in result.stdout
    assert "ECS + OCSF <= 25 us per record (in process)" in result.stdout
    assert "Traceback" not in (tmp_path / "work" / "worker-2.log").read_text()
