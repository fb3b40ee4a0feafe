"""Running independent pieces of work on the CPU's cores from Python threads.

The work handed to these threads (OpenCV detectors, kornia/PyTorch ops, ONNX Runtime sessions) releases
the GIL, so threads give real parallelism; results always come back in input order.
"""
from __future__ import annotations

from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Callable, Iterable, Iterator, TypeVar

__all__ = ["ordered_map"]

T = TypeVar("T")
R = TypeVar("R")


def ordered_map(fn: Callable[[T], R], items: Iterable[T], workers: int) -> Iterator[R]:
    """``map(fn, items)`` on ``workers`` threads, results in input order.

    At most ``2 * workers`` items are taken from ``items`` ahead of the result being read, so a long
    iterable of large inputs is never held in memory at once. ``workers <= 1`` runs in the calling thread.
    An exception raised by ``fn`` is raised when its result is reached; the remaining work is cancelled.
    """
    if workers <= 1:
        yield from map(fn, items)
        return
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="descnet") as pool:
        pending: deque[Future] = deque()
        try:
            for item in items:
                pending.append(pool.submit(fn, item))
                if len(pending) >= 2 * workers:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            for future in pending:
                future.cancel()
