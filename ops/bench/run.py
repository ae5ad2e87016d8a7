#!/usr/bin/env python3
"""The trailpipe benchmark: ``python ops/bench/run.py --help`` (same as ``trailpipe bench``).

trailpipe against the floor and a naive collector on the same generated CloudTrail files
served by a local S3 API, the normalizers in process, listing at scale, and a worker's memory
on a large object.  The harness is ``ops/bench/harness.py``; the naive collector,
``ops/bench/naive_collector.py``, is printed with ``--show-naive``.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from ops.bench.harness import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
