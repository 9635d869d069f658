"""A few threads for the precompute's numpy work: numpy and BLAS release the GIL, so chunks of
members computed on two threads use two cores."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from contextlib import contextmanager
from typing import TypeVar

from threadpoolctl import threadpool_limits

T = TypeVar("T")


@contextmanager
def pool(threads: int) -> Iterator[Executor | None]:
    """A pool of `threads` threads (None: run in the calling thread), BLAS held to one thread
    meanwhile: two threads each calling a multi-threaded BLAS would oversubscribe the cores."""
    with threadpool_limits(1, user_api="blas"):
        if threads <= 1:
            yield None
            return
        with ThreadPoolExecutor(threads) as executor:
            yield executor


def submit(executor: Executor | None, fn: Callable[..., T], *args: object) -> Future[T]:
    """`fn(*args)` on the pool (first come, first served), or now in this thread when there is none."""
    if executor is not None:
        return executor.submit(fn, *args)
    done: Future[T] = Future()
    done.set_result(fn(*args))
    return done
