"""Sources are cheap: one botocore data loader per process (service models parsed once), so a
worker with 150 sources stays under 300 MB in every process of the run (worker main, pool
children, beat), each of them having built S3 clients for its share of the sources."""
from __future__ import annotations

import psutil
import pytest
from conftest import (
    config_dict,
    shared_log_files,
    source_dict,
    start_celery,
    stop_process,
    upload,
    wait_for,
    write_config,
)

SOURCES = 150
RSS_LIMIT_MB = 300


@pytest.mark.slow
def test_150_sources_keep_every_worker_process_under_300_mb(tmp_path, redis_server, redis_client, s3, bucket,
                                                           moto_endpoint):
    smallest = min(shared_log_files(), key=lambda f: len(f[1]))
    upload(s3, bucket, [smallest])
    sources = [source_dict(bucket, moto_endpoint, identifier=f"src-{n:03d}") for n in range(SOURCES)]
    config_path = write_config(tmp_path / "c.yaml", config_dict(redis_server.url, sources))
    worker = start_celery(["worker", "--concurrency", "2", "--loglevel", "warning"], config_path,
                          tmp_path / "worker.log")
    beat = start_celery(["beat", "--loglevel", "warning", "--schedule", str(tmp_path / "beat")], config_path,
                        tmp_path / "beat.log")

    def done() -> int:
        pipe = redis_client.pipeline(transaction=False)
        for n in range(SOURCES):
            pipe.hget(f"trailpipe:src:src-{n:03d}:stats", "objects_done")
        return sum(int(v or 0) for v in pipe.execute())

    try:
        # Beat's first discovery of every source, then one ingest per source: each pool child
        # has built S3 clients (and listed, read) for its share of the 150 sources.
        wait_for(lambda: done() == SOURCES, timeout=600, interval=2, what="one object done per source")
        assert redis_client.xlen("trailpipe:events") == SOURCES * len(smallest[2])
        main = psutil.Process(worker.pid)
        children = main.children(recursive=True)
        assert len(children) >= 2
        rss = {f"worker main {main.pid}": main.memory_info().rss,
               **{f"pool child {c.pid}": c.memory_info().rss for c in children},
               f"beat {beat.pid}": psutil.Process(beat.pid).memory_info().rss}
        mb = {name: round(value / 2**20, 1) for name, value in rss.items()}
        print(f"RSS with {SOURCES} sources (MB): {mb}")
        assert all(value < RSS_LIMIT_MB for value in mb.values()), mb
    finally:
        stop_process(beat)
        stop_process(worker)
