#!/usr/bin/env python3
"""The trailpipe benchmark: ``python ops/bench/run.py --help`` (same as ``trailpipe bench``).

trailpipe against a naive collector and the hardware floor on the same generated CloudTrail
files served by a local S3 API, listing at scale, and a worker's memory on a large object.
The harness is ``workers/bench.py`` (it drives Celery, so it lives beside the app).
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from workers.bench import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
