"""The one retry layer and the bound on requests in flight.

SDK clients are built with `max_retries=0`; every provider call goes through `call_with_retries`, which retries
only what the provider classified as transient (429, 5xx, timeouts, dropped connections), honours Retry-After,
and gives up with a message that says what to do.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import TypeVar

import tenacity

from kit.errors import KitError, ProviderError, TransientProviderError

T = TypeVar("T")
R = TypeVar("R")

MAX_RETRY_AFTER_S = 120.0
BACKOFF_INITIAL_S = 0.5
BACKOFF_MAX_S = 30.0

Classifier = Callable[[BaseException], KitError | None]


def _wait(state: tenacity.RetryCallState) -> float:
    err = state.outcome.exception() if state.outcome else None
    if isinstance(err, TransientProviderError) and err.retry_after is not None:
        return min(max(err.retry_after, 0.0), MAX_RETRY_AFTER_S)
    backoff = min(BACKOFF_MAX_S, BACKOFF_INITIAL_S * 2 ** (state.attempt_number - 1))
    return backoff * (0.5 + random.random() / 2)


def call_with_retries(fn: Callable[[], T], *, classify: Classifier, max_attempts: int, what: str,
                      sleep: Callable[[float], None] = time.sleep) -> T:
    """Call `fn`, retrying transient failures; known failures come out as KitError, unknown ones unchanged."""

    def attempt() -> T:
        try:
            return fn()
        except KitError:
            raise
        except Exception as exc:
            mapped = classify(exc)
            if mapped is None:
                raise
            raise mapped from None

    retrying = tenacity.Retrying(retry=tenacity.retry_if_exception_type(TransientProviderError),
                                 stop=tenacity.stop_after_attempt(max_attempts), wait=_wait, sleep=sleep,
                                 reraise=True)
    try:
        return retrying(attempt)
    except TransientProviderError as err:
        raise ProviderError(
            f"{what}: still failing after {max_attempts} attempts ({err}); work done so far is saved, "
            "rerun the same command later to resume", request_id=err.request_id) from None


def bounded_map(fn: Callable[[T], R], items: Iterable[T], *, max_in_flight: int) -> Iterator[tuple[T, R]]:
    """Apply `fn` to items with at most `max_in_flight` calls running; yield (item, result) as each finishes.

    The first exception stops new submissions, waits for running calls, and is raised.
    """
    iterator = iter(items)
    with ThreadPoolExecutor(max_workers=max_in_flight, thread_name_prefix="slkit") as pool:
        running: dict[Future[R], T] = {}
        failure: BaseException | None = None
        for item in iterator:
            running[pool.submit(fn, item)] = item
            if len(running) >= max_in_flight:
                break
        while running:
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                item = running.pop(future)
                if future.exception() is not None:
                    failure = failure or future.exception()
                    continue
                yield item, future.result()
            if failure is None:
                for item in iterator:
                    running[pool.submit(fn, item)] = item
                    if len(running) >= max_in_flight:
                        break
        if failure is not None:
            raise failure
