"""How close to a provider's request limit the kit runs, and how many 429s it takes to get there.

Drives chat requests through the kit's own provider route (the official SDK, the one retry layer, the rate
governor) against the local server with injected latency and a server-side requests-per-minute limit (a token
bucket that starts full, as OpenAI's does), then prints the throughput as a fraction of the limit and the 429s.

    python bench/rate_limit.py                      # 20,000 requests, 200 ms latency, 6,000 requests/minute
    python bench/rate_limit.py --requests 3000 --rpm 1200

Two figures, because the bucket starts full: `sustained` is the request rate once the burst allowance is spent (the
second half of the requests after the first `rpm`) divided by the limit; `vs ideal` is the time the limit allows
for all requests (the full bucket, then its refill rate) divided by the time taken. Target: both >= 0.95, with few
429s.
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from kit.limits import bounded_map
from kit.providers.openai_dialect import OpenAIProvider, Settings
from kit.sim.engine import ChatRequest, EngineError, ModelInfo, TrainEvent, TrainResult, TrainSpec
from kit.sim.faults import FaultConfig
from kit.sim.server import LocalServer
from kit.sim.store import Store

MODEL = "bench-echo"
SECONDS_PER_MINUTE = 60.0


class EchoEngine:
    """Answers instantly, so the bench measures rate limiting, not a model."""

    def list_models(self) -> list[ModelInfo]:
        return [ModelInfo(id=MODEL)]

    def has_model(self, model_id: str) -> bool:
        return model_id == MODEL

    def chat(self, request: ChatRequest) -> list[str]:
        return ["ok"] * request.n

    def train(self, spec: TrainSpec, on_event: Callable[[TrainEvent], None]) -> TrainResult:
        raise EngineError("the bench engine does not train")


@dataclass(frozen=True)
class BenchResult:
    requests: int
    elapsed_s: float
    sustained_fraction: float
    ideal_fraction: float
    responses_429: int
    governor_throttles: int


def _provider(base_url: str, max_in_flight: int) -> OpenAIProvider:
    settings = Settings(timeout_s=30.0, max_attempts=20, max_in_flight=max_in_flight, poll_interval_s=1.0,
                        max_samples_per_request=1, model_names={}, key_env=None)
    return OpenAIProvider("bench", settings, base_url=base_url, api_key="bench")


def _drive(provider: OpenAIProvider, requests: int) -> list[float]:
    """Send the requests; return each one's completion time."""
    done: list[float] = []
    lock = threading.Lock()

    def send(i: int) -> None:
        provider.chat(MODEL, [{"role": "user", "content": f"request {i}"}], n=1, temperature=1.0, max_tokens=None,
                      seed=i)
        with lock:
            done.append(time.monotonic())

    for _ in bounded_map(send, range(requests), max_in_flight=provider.max_in_flight):
        pass
    return sorted(done)


def _fractions(done: list[float], start: float, rpm: int) -> tuple[float, float]:
    """(sustained, vs ideal): the rate over the steady half of the run (every request after the midpoint between
    the burst allowance and the end), and the time the limit allows for everything over the time taken."""
    limit_per_s = rpm / SECONDS_PER_MINUTE
    elapsed = done[-1] - start
    ideal = max(len(done) - (rpm - 1), 0) / limit_per_s  # the warm-up request took one token of the full bucket
    first = min((rpm + len(done)) // 2, len(done) - 1)
    steady = (len(done) - 1 - first) / (done[-1] - done[first]) if done[-1] > done[first] else float("nan")
    return steady / limit_per_s, ideal / elapsed if elapsed > 0 else float("nan")


def run_bench(requests: int, rpm: int, latency_s: float, max_in_flight: int) -> BenchResult:
    faults = FaultConfig(latency_s=latency_s, rpm_limit=rpm)
    with tempfile.TemporaryDirectory() as folder, \
            LocalServer(EchoEngine(), Store(Path(folder)), faults=faults) as server:
        provider = _provider(server.base_url, max_in_flight)
        _drive(provider, 1)  # warm up: the server loads its tokenizer on the first request
        start = time.monotonic()
        done = _drive(provider, requests)
        sustained, ideal = _fractions(done, start, rpm)
        provider.close()
        stats = server.stats
    return BenchResult(requests, done[-1] - start, sustained, ideal, int(stats.by_status.get("429", 0)),
                       provider.governor.throttles)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--rpm", type=int, default=6_000, help="server-side limit, requests per minute")
    parser.add_argument("--latency", type=float, default=0.2, help="injected latency per response, seconds")
    parser.add_argument("--max-in-flight", type=int, default=64, help="the provider's max_in_flight")
    args = parser.parse_args()
    result = run_bench(args.requests, args.rpm, args.latency, args.max_in_flight)
    rate = result.requests / result.elapsed_s * SECONDS_PER_MINUTE
    print(f"requests: {result.requests:,} in {result.elapsed_s:.1f} s ({rate:,.0f} requests/min overall; limit "
          f"{args.rpm:,}/min, bucket starts full; latency {args.latency * 1000:.0f} ms; max_in_flight "
          f"{args.max_in_flight})")
    print(f"throughput as a fraction of the limit: sustained {result.sustained_fraction:.3f}, "
          f"vs ideal {result.ideal_fraction:.3f} (target >= 0.95)")
    print(f"429s seen: {result.responses_429} (governor throttled {result.governor_throttles} times)")


if __name__ == "__main__":
    main()
