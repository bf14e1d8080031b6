"""Process-wide tuning for long-running processes (server workers, benchmarks)."""

from __future__ import annotations

import gc

# CPython's default first-generation threshold (700 allocations) makes the collector run
# every few transfers under load, and each run walks the young objects a batch creates. A
# higher threshold cuts that cost; objects alive at start-up are frozen out of the walk.
GC_THRESHOLDS = (50_000, 20, 50)


def tune_gc() -> None:
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
