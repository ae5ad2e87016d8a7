#!/usr/bin/env python3
"""A discovery's enqueue: CPU and broker round trips per ingest task, one by one against batched.

    python ops/bench/enqueue_bench.py [--tasks 1000] [--rounds 5]

A fresh redis-server (the broker) and the real Celery app (``workers.app``, configured for one
source on it). Each round publishes ``--tasks`` ``trailpipe.ingest_object`` messages (a) one
``apply_async`` at a time, as every enqueue was before issue 22's batching, and (b) through
``workers.tasks.BatchedEnqueue`` (kombu's ``Producer.batch``: one pipeline per
``ENQUEUE_BATCH`` messages), in turn. Prints the process CPU per task (median of the rounds)
and the round trips each way (redis-py's sends). The queue is emptied after each round.

Measured (2 shared cores, kombu 5.7, 2026-12-03): (a) 544 us, (b) 297 us per task (0.55x);
1,000 round trips against 2 (in earlier runs 385-482 against 207-253 us).
With each queue declared once per batch (2026-12-04, interleaved with the code before in
two pairs): batched / one by one 0.37 and 0.39, against 0.60 and 0.45 before.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import redis.connection
import yaml

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from pipeline.redis_server import RedisServer  # noqa: E402

SOURCE = "bench-enqueue"
KEY = "AWSLogs/111122223333/CloudTrail/us-east-1/2024/01/01/111122223333_CloudTrail_us-east-1_20240101T0000Z_{:016d}.json.gz"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    sends = [0]
    real_send = redis.connection.AbstractConnection.send_packed_command

    def counted(self, command, *rest, **kwargs):
        sends[0] += 1
        return real_send(self, command, *rest, **kwargs)

    redis.connection.AbstractConnection.send_packed_command = counted  # type: ignore[method-assign]
    with tempfile.TemporaryDirectory() as directory, RedisServer(Path(directory)) as server:
        config = Path(directory) / "trailpipe.yaml"
        config.write_text(yaml.safe_dump({"redis_url": server.url, "sources": [{
            "identifier": SOURCE, "bucket": "bench-enqueue", "region": "us-east-1",
            "endpoint_url": "http://127.0.0.1:1", "directory_prefix": "AWSLogs/", "recurrence": "1D",
            "auth": {"method": "access_key", "access_key_id": "AKIABENCHTRAILPIPE00", "secret_access_key": "x"}}]}))
        os.environ["TRAILPIPE_CONFIG"] = str(config)
        from workers import tasks  # noqa: PLC0415  (the app reads TRAILPIPE_CONFIG when imported)

        client = redis.Redis.from_url(server.url)
        queue = tasks.runtime().source(SOURCE).queue_name
        tasks.enqueue_ingest(SOURCE, "warm-up")
        cpu: dict[str, list[float]] = {"one by one": [], "batched": []}
        trips: dict[str, int] = {}
        for _ in range(args.rounds):
            for name in cpu:
                client.delete(queue)
                sends0, started = sends[0], time.process_time()
                if name == "batched":
                    with tasks.batched_enqueues() as enqueue:
                        for number in range(args.tasks):
                            enqueue(SOURCE, KEY.format(number))
                else:
                    for number in range(args.tasks):
                        tasks.enqueue_ingest(SOURCE, KEY.format(number))
                cpu[name].append((time.process_time() - started) / args.tasks)
                trips[name] = sends[0] - sends0
                assert client.llen(queue) == args.tasks
        client.delete(queue)
        print(f"{args.tasks} ingest tasks x {args.rounds} rounds, process CPU per task (median) and round trips:")
        for name, values in cpu.items():
            print(f"  {name:10s}  {statistics.median(values) * 1e6:5.0f} us   {trips[name]} round trips")
        print(f"  ratio batched / one by one: {statistics.median(cpu['batched']) / statistics.median(cpu['one by one']):.2f}")


if __name__ == "__main__":
    main()
