"""Fault injection for the local server: rate limits, server errors, latency and dropped connections.

Every decision is drawn from one seeded `random.Random`, so a test that sends the same requests in the same order
sees the same faults. A fault is decided before the request reaches a route, so a faulted request never changes
stored state — except `lost_response_rate`, which models the one real-world case where it does: the request takes
effect and the connection dies before the response arrives (a timed-out `jobs.create` that still created a job).
"""

from __future__ import annotations

import math
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum

SECONDS_PER_MINUTE = 60.0
DEFAULT_RETRY_AFTER_S = 1.0
DEFAULT_FAULT_SEED = 0


@dataclass(frozen=True)
class FaultConfig:
    """What goes wrong, and how often. Every knob defaults to off; rates are fractions of requests in [0, 1]."""

    rate_429: float = 0.0
    """Fraction of requests answered 429 `rate_limit_exceeded` with a `Retry-After` of `retry_after_s`."""
    rate_500: float = 0.0
    """Fraction of requests answered 500 `server_error`."""
    retry_after_s: float = DEFAULT_RETRY_AFTER_S
    """Seconds sent in `Retry-After` (and `retry-after-ms`) on injected 429s; rpm-limit 429s send the true wait."""
    latency_s: float = 0.0
    """Seconds added to every API response."""
    slow_rate: float = 0.0
    """Fraction of responses delayed by a further `slow_s` seconds."""
    slow_s: float = 0.0
    drop_rate: float = 0.0
    """Fraction of requests whose connection is closed without a response; the request is not processed."""
    lost_response_rate: float = 0.0
    """Fraction of requests that ARE processed but whose connection is closed before the response is sent."""
    job_failure_rate: float = 0.0
    """Fraction of fine-tuning jobs that fail with `server_error` when they start running."""
    rpm_limit: int | None = None
    """Requests per minute across all API requests (token bucket); adds `x-ratelimit-*-requests` headers."""
    seed: int = DEFAULT_FAULT_SEED

    def __post_init__(self) -> None:
        for name in ("rate_429", "rate_500", "slow_rate", "drop_rate", "lost_response_rate", "job_failure_rate"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"FaultConfig.{name} must be a fraction in [0, 1], got {value}")
        for name in ("retry_after_s", "latency_s", "slow_s"):
            if getattr(self, name) < 0:
                raise ValueError(f"FaultConfig.{name} must be >= 0, got {getattr(self, name)}")
        if self.rpm_limit is not None and self.rpm_limit < 1:
            raise ValueError(f"FaultConfig.rpm_limit must be a positive integer or None, got {self.rpm_limit}")


class FaultKind(str, Enum):
    NONE = "none"
    DROP = "drop"
    LOST_RESPONSE = "lost_response"
    RATE_429 = "rate_429"
    RPM_LIMIT = "rpm_limit"
    RATE_500 = "rate_500"


@dataclass(frozen=True)
class FaultDecision:
    """What the server does with one request: the fault (if any), extra delay, and headers to add."""

    kind: FaultKind = FaultKind.NONE
    delay_s: float = 0.0
    retry_after_s: float | None = None
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def rejects(self) -> bool:
        """True when the request must not reach the route."""
        return self.kind in (FaultKind.DROP, FaultKind.RATE_429, FaultKind.RPM_LIMIT, FaultKind.RATE_500)


def format_duration(seconds: float) -> str:
    """Render a duration the way OpenAI's `x-ratelimit-reset-*` headers do: `20ms`, `1.5s`, `6m0s`."""
    millis = max(0, math.ceil(seconds * 1000))
    if millis < 1000:
        return f"{millis}ms"
    minutes, rest_ms = divmod(millis, 60_000)
    secs = f"{rest_ms / 1000:.3f}".rstrip("0").rstrip(".")
    return f"{minutes}m{secs}s" if minutes else f"{secs}s"


class RequestBucket:
    """A requests-per-minute token bucket: full at `limit`, refilled continuously at `limit / 60` per second."""

    def __init__(self, limit: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self._clock = clock
        self._tokens = float(limit)
        self._updated = clock()

    def _refill(self) -> None:
        now = self._clock()
        rate = self.limit / SECONDS_PER_MINUTE
        self._tokens = min(float(self.limit), self._tokens + (now - self._updated) * rate)
        self._updated = now

    def take(self) -> float | None:
        """Spend one request; return None on success, else the seconds until one request is available."""
        self._refill()
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return None
        return (1.0 - self._tokens) * SECONDS_PER_MINUTE / self.limit

    def headers(self) -> dict[str, str]:
        seconds_to_full = (self.limit - self._tokens) * SECONDS_PER_MINUTE / self.limit
        return {
            "x-ratelimit-limit-requests": str(self.limit),
            "x-ratelimit-remaining-requests": str(math.floor(self._tokens)),
            "x-ratelimit-reset-requests": format_duration(seconds_to_full),
        }


class FaultInjector:
    """Draws fault decisions from a seeded generator; thread-safe, one per server."""

    def __init__(self, config: FaultConfig | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config or FaultConfig()
        self._rng = random.Random(self.config.seed)
        self._lock = threading.Lock()
        self._bucket = RequestBucket(self.config.rpm_limit, clock) if self.config.rpm_limit else None

    def _draw(self, rate: float) -> bool:
        return rate > 0.0 and self._rng.random() < rate

    def _delay(self) -> float:
        extra = self.config.slow_s if self._draw(self.config.slow_rate) else 0.0
        return self.config.latency_s + extra

    def _random_fault(self) -> FaultKind:
        cfg = self.config
        for kind, rate in ((FaultKind.DROP, cfg.drop_rate), (FaultKind.RATE_429, cfg.rate_429),
                           (FaultKind.RATE_500, cfg.rate_500), (FaultKind.LOST_RESPONSE, cfg.lost_response_rate)):
            if self._draw(rate):
                return kind
        return FaultKind.NONE

    def decide(self) -> FaultDecision:
        """Decide the fate of one API request (rpm bucket first, then the random faults)."""
        with self._lock:
            delay = self._delay()
            wait = self._bucket.take() if self._bucket else None
            headers = self._bucket.headers() if self._bucket else {}
            if wait is not None:
                return FaultDecision(FaultKind.RPM_LIMIT, delay, wait, headers)
            kind = self._random_fault()
            retry_after = self.config.retry_after_s if kind is FaultKind.RATE_429 else None
            return FaultDecision(kind, delay, retry_after, headers)

    def job_fails(self) -> bool:
        """Whether a fine-tuning job that is about to run fails with an injected `server_error`."""
        with self._lock:
            return self._draw(self.config.job_failure_rate)
