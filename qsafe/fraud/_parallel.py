"""Run independent pieces of work (models of an audit, folds, attacks) in a few worker processes.

Workers are spawned (not forked: torch and OpenMP state do not survive a fork) and each uses one torch thread,
as the project's measurements require. ``workers <= 1`` runs everything in this process, in order. Results come
back in the order of the items.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

T = TypeVar("T")
R = TypeVar("R")


def _init_worker() -> None:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:  # pragma: no cover - torch is only needed by the tasks that train
        pass


def pmap(fn: Callable[[T], R], items: Iterable[T], workers: int = 1,
         progress: Callable[[int, R], None] | None = None) -> list[R]:
    """``[fn(item) for item in items]`` on up to ``workers`` processes (``fn`` must be a module-level function).

    Args:
        fn: the task (picklable: a module-level function). items: its arguments (picklable).
        workers: processes to use; 1 (or fewer items than 2) runs in this process.
        progress: called in this process with (index, result) as each task finishes.
    """
    todo: Sequence[T] = list(items)
    if workers <= 1 or len(todo) < 2:
        out = []
        for i, item in enumerate(todo):
            res = fn(item)
            if progress:
                progress(i, res)
            out.append(res)
        return out
    import concurrent.futures as cf
    import multiprocessing as mp

    results: list[Any] = [None] * len(todo)
    with cf.ProcessPoolExecutor(max_workers=min(workers, len(todo)), mp_context=mp.get_context("spawn"),
                                initializer=_init_worker) as pool:
        futures = {pool.submit(fn, item): i for i, item in enumerate(todo)}
        for fut in cf.as_completed(futures):
            i = futures[fut]
            results[i] = fut.result()
            if progress:
                progress(i, results[i])
    return results
