#!/usr/bin/env python3
"""Profile the object processor the way a worker process runs it, without Celery around it.

    python ops/bench/profile_ingest.py [--files 20] [--min-records 100] [--max-records 5000]
                                       [--normalize off|on] [--profiler pyinstrument|cprofile|none]
                                       [--out PATH]

Same data, S3 server (moto, in its own process) and fresh redis-server as ``ops/bench/run.py``;
one discovery (``pipeline.discovery.discover``) collects the keys, then
``pipeline.ingest.ingest_object`` runs on each, in this process, under the profiler. Prints
events/s and CPU seconds per million events (this process + redis-server), then the profile
(pyinstrument: the call tree; cprofile: the top functions by cumulative and own time).
pyinstrument is a dev-only dependency: ``.venv/bin/pip install pyinstrument``.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from ops.bench import harness as bench  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=20)
    parser.add_argument("--min-records", type=int, default=100)
    parser.add_argument("--max-records", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--normalize", choices=("off", "on"), default="off",
                        help="the source's output_formats: off = [], on = [ecs, ocsf]")
    parser.add_argument("--profiler", choices=("pyinstrument", "cprofile", "none"), default="pyinstrument")
    parser.add_argument("--no-appendonly", dest="appendonly", action="store_false",
                        help="redis-server without AOF (default: AOF on, as in production)")
    parser.add_argument("--out", help="also write the profile here (pyinstrument: .html or .txt; cprofile: pstats)")
    args = parser.parse_args()

    from pipeline.config import load_config  # noqa: PLC0415
    from pipeline.discovery import discover  # noqa: PLC0415
    from pipeline.ingest import ingest_object  # noqa: PLC0415
    from pipeline.runtime import Runtime  # noqa: PLC0415

    options = bench.BenchOptions(files=args.files, min_records=args.min_records, max_records=args.max_records,
                                 seed=args.seed, normalize=args.normalize, appendonly=args.appendonly)
    (formats,) = bench.FORMAT_SETS[args.normalize]
    note = f"output_formats {formats}"
    with tempfile.TemporaryDirectory(prefix="trailpipe-profile-") as tmp:
        work = Path(tmp)
        s3 = bench.S3Server(work / "s3.log").start()
        try:
            files = bench.make_files(options)
            client = s3.client()
            client.create_bucket(Bucket=bench.BUCKET)
            for log in files:
                client.put_object(Bucket=bench.BUCKET, Key=log.key, Body=log.body)
            with bench.fresh_redis(work / "redis", options) as server:
                config = load_config(bench.write_config(work / "c.yaml", server.url, s3.endpoint, options, formats))
                runtime = Runtime(config)
                source = config.sources[0]
                keys: list[str] = []
                discover(source, runtime.state, runtime.s3(source), lambda _sid, key: keys.append(key))
                profiler = None
                if args.profiler == "pyinstrument":
                    from pyinstrument import Profiler  # noqa: PLC0415

                    profiler = Profiler(interval=0.0005)
                elif args.profiler == "cprofile":
                    import cProfile  # noqa: PLC0415

                    profiler = cProfile.Profile()
                me, redis_pid = os.getpid(), server.process.pid
                cpu0, rcpu0 = bench.cpu_seconds([me], tree=False), bench.cpu_seconds([redis_pid])
                t0 = time.perf_counter()
                if profiler is not None:
                    profiler.enable() if args.profiler == "cprofile" else profiler.start()
                events = 0
                for key in keys:
                    events += ingest_object(source, key, runtime.state, runtime.s3(source), runtime.limits).events
                if profiler is not None:
                    profiler.disable() if args.profiler == "cprofile" else profiler.stop()
                seconds = time.perf_counter() - t0
                cpu, rcpu = bench.cpu_seconds([me], tree=False) - cpu0, bench.cpu_seconds([redis_pid]) - rcpu0
                print(f"normalization {note}; {len(keys)} objects, {events:,} events in {seconds:.2f} s: "
                      f"{events / seconds:,.0f} events/s; CPU {(cpu + rcpu) / events * 1e6:.1f} s per million "
                      f"events ({rcpu / (cpu + rcpu) * 100:.0f}% redis-server)"
                      + (" (under the profiler)" if profiler is not None else ""))
                commands = bench.redis_command_usec(runtime.redis, top=1000)  # every command, by time
                outside = rcpu * 1e6 - sum(row["usec"] for row in commands.values())
                print("redis-server, µs per event: " + ", ".join(
                    f"{name} {row['usec'] / events:.1f}" for name, row in commands.items()
                    if row["usec"] / events >= 0.1) + f"; outside commands {outside / events:.1f}")
                runtime.redis.close()
        finally:
            s3.stop()
    if args.profiler == "pyinstrument":
        print(profiler.output_text(unicode=True, color=False, show_all=False))
        if args.out:
            Path(args.out).write_text(profiler.output_html() if args.out.endswith(".html")
                                      else profiler.output_text(unicode=True, color=False))
    elif args.profiler == "cprofile":
        import pstats  # noqa: PLC0415

        stats = pstats.Stats(profiler)
        if args.out:
            stats.dump_stats(args.out)
        stats.sort_stats("cumulative").print_stats(30)
        stats.sort_stats("tottime").print_stats(30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
