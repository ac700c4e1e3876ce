"""Batches fetched ahead by threads of the training process: no hand-over between processes.

Reading a batch from memory-mapped shards is a copy that numpy does with the GIL released, so
threads overlap it with the training step without pickling each batch into shared memory, the
cost that bounds a DataLoader worker process (benchmarks/bench_loader.py). The batches come out
in their plan's order whatever the thread count, so results do not depend on it.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor


def prefetched(fetch: Callable, batches: Iterable, threads: int, ahead: int = 0) -> Iterator:
    """`fetch(b)` for each of `batches`, in order, by `threads` threads working up to `ahead`
    batches ahead (default: two per thread)."""
    ahead = ahead or 2 * threads
    with ThreadPoolExecutor(threads, thread_name_prefix="jtm-fetch") as pool:
        pending: deque = deque()
        for batch in batches:
            pending.append(pool.submit(fetch, batch))
            if len(pending) > ahead:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
