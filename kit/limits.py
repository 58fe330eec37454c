"""The one retry layer, the bound on requests in flight, and pacing under a provider's rate limit.

SDK clients are built with `max_retries=0`; every provider call goes through `call_with_retries`, which retries
only what the provider classified as transient (429, 5xx, timeouts, dropped connections), honours Retry-After,
and gives up with a message that says what to do.

Each provider also owns a `RateGovernor`: every request takes a slot from it first. The governor learns the
provider's request limit from the `x-ratelimit-*` (or `anthropic-ratelimit-*`) headers and paces requests just
under it with a token bucket kept in step with the `remaining` count the provider reports; a 429 halves the number
of requests in flight and pauses new ones for the Retry-After; successes grow it back (AIMD).
"""

from __future__ import annotations

import datetime as dt
import math
import random
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
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


# --- pacing under a provider's rate limit --------------------------------------------------------------------------

SECONDS_PER_MINUTE = 60.0
PACING_SAFETY = 0.985          # pace at this fraction of the announced request rate
THROTTLE_FACTOR = 0.5          # a 429 multiplies the in-flight window by this
DEFAULT_THROTTLE_S = 1.0       # pause after a 429 that names no Retry-After
MIN_WINDOW = 1.0
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_HEADER_SETS = (("x-ratelimit-limit-requests", "x-ratelimit-remaining-requests", "x-ratelimit-reset-requests"),
                ("anthropic-ratelimit-requests-limit", "anthropic-ratelimit-requests-remaining",
                 "anthropic-ratelimit-requests-reset"),
                ("x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset"))


@dataclass(frozen=True)
class RateInfo:
    """A provider's report on its request limit: requests per minute, what is left, seconds until full."""

    limit: int
    remaining: int
    reset_s: float | None


def parse_duration(text: str) -> float | None:
    """`20ms`, `1.5s`, `6m0s`, `1h2m` (OpenAI's reset format), a plain number of seconds, or an RFC 3339 time."""
    text = text.strip()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    parts = _DURATION_PART.findall(text)
    if parts and "".join(n + u for n, u in parts) == text:
        return sum(float(n) * _UNITS[u] for n, u in parts)
    try:
        moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return max(0.0, moment.timestamp() - time.time())


def parse_rate_headers(headers: Mapping[str, str]) -> RateInfo | None:
    """The request limit a response reports, from the first header family present (OpenAI, Anthropic, plain)."""
    lowered = {k.lower(): v for k, v in headers.items()}
    for limit_key, remaining_key, reset_key in _HEADER_SETS:
        if limit_key in lowered and remaining_key in lowered:
            try:
                limit, remaining = int(float(lowered[limit_key])), int(float(lowered[remaining_key]))
            except ValueError:
                return None
            reset = parse_duration(lowered[reset_key]) if reset_key in lowered else None
            return RateInfo(limit, remaining, reset) if limit > 0 else None
    return None


@dataclass
class Ticket:
    """One request's slot; `estimate` is the governor's token count right after the request took its token."""

    estimate: float | None


class RateGovernor:
    """Requests in flight and request pacing for one provider, adapted to what the provider reports. Thread-safe.

    Use `with governor.slot() as ticket:` around each request, then `observe(ticket, headers)` on a response or
    `throttled(retry_after)` on a 429.
    """

    def __init__(self, max_in_flight: int, *, clock: Callable[[], float] = time.monotonic,
                 safety: float = PACING_SAFETY) -> None:
        self.max_in_flight = max_in_flight
        self.window = float(max_in_flight)
        self.rate: float | None = None          # requests per second we pace at, once the limit is known
        self.capacity = 0.0
        self.tokens = 0.0
        self.in_flight = 0
        self.throttles = 0
        self._paused_until = 0.0
        self._refilled = clock()
        self._clock = clock
        self._safety = safety
        self._cond = threading.Condition()

    def _refill(self, now: float) -> None:
        if self.rate is not None:
            self.tokens = min(self.capacity, self.tokens + (now - self._refilled) * self.rate)
        self._refilled = now

    def _wait_time(self, now: float) -> float | None:
        """Seconds to wait before a request may go (None: it may go now; 0: wait for a release)."""
        if now < self._paused_until:
            return self._paused_until - now
        if self.in_flight >= max(MIN_WINDOW, math.floor(self.window)):
            return 0.0
        if self.rate is not None and self.tokens < 1.0:
            return (1.0 - self.tokens) / self.rate
        return None

    def acquire(self) -> Ticket:
        with self._cond:
            while True:
                now = self._clock()
                self._refill(now)
                delay = self._wait_time(now)
                if delay is None:
                    break
                self._cond.wait(delay if delay > 0 else None)
            self.in_flight += 1
            if self.rate is None:
                return Ticket(None)
            self.tokens -= 1.0
            return Ticket(self.tokens)

    def release(self) -> None:
        with self._cond:
            self.in_flight -= 1
            self._cond.notify_all()

    def slot(self) -> _Slot:
        return _Slot(self)

    def observe(self, ticket: Ticket, headers: Mapping[str, str] | None) -> None:
        """A response arrived: grow the window; learn the limit and correct the token estimate from its headers."""
        info = parse_rate_headers(headers or {})
        with self._cond:
            self.window = min(float(self.max_in_flight), self.window + 1.0 / max(self.window, MIN_WINDOW))
            if info is not None:
                self._learn(info, ticket)
            self._cond.notify_all()

    def _learn(self, info: RateInfo, ticket: Ticket) -> None:
        self._refill(self._clock())
        if self.rate is None:
            self.rate = info.limit / SECONDS_PER_MINUTE * self._safety
            self.capacity = float(info.limit)
            self.tokens = float(info.remaining) - self.in_flight
            return
        self.rate = info.limit / SECONDS_PER_MINUTE * self._safety
        self.capacity = float(info.limit)
        if ticket.estimate is not None and ticket.estimate > info.remaining:
            self.tokens -= ticket.estimate - info.remaining  # we believed in more room than the provider had

    def throttled(self, retry_after: float | None) -> None:
        """A 429: halve the window, pause new requests for Retry-After, and assume the bucket is empty."""
        with self._cond:
            self.throttles += 1
            self.window = max(MIN_WINDOW, self.window * THROTTLE_FACTOR)
            pause = retry_after if retry_after is not None else DEFAULT_THROTTLE_S
            self._paused_until = max(self._paused_until, self._clock() + min(pause, MAX_RETRY_AFTER_S))
            self.tokens = min(self.tokens, 0.0)
            self._cond.notify_all()


class _Slot:
    def __init__(self, governor: RateGovernor) -> None:
        self._governor = governor

    def __enter__(self) -> Ticket:
        return self._governor.acquire()

    def __exit__(self, *exc: object) -> None:
        self._governor.release()
