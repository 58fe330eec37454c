"""Provider routes in isolation: documented error bodies (replayed through an httpx2 MockTransport) map to the kit's
one-line errors, training files are checked before upload, rate-limit headers are read, the governor paces."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest

from conftest import slkit
from kit.errors import DataError, ProviderError, TransientProviderError
from kit.limits import RateGovernor, Ticket, parse_duration, parse_rate_headers
from kit.providers.anthropic_dialect import AnthropicProvider, message_params
from kit.providers.base import JobRequest
from kit.providers.errors import QuotaExceededError, TrainingFileRejected
from kit.providers.openai_dialect import OpenAIProvider, Settings
from kit.providers.together import TogetherProvider
from kit.sim.server import LocalServer
from kit.sim.store import Store
from kit.stages.finetune import validate_training_file
from route_engine import RouteEngine
from routes_common import FAST, experiment, run_inline, server  # noqa: F401
from test_cli import one_line_error

SECRET = "sk-test-secret-123456"
REQUEST = JobRequest(model="gpt-4.1-mini-2025-04-14", training_file="file-abc", metadata={"slkit_run": "r"},
                     tag="abc123")


def settings(**changes: Any) -> Settings:
    base = dict(timeout_s=5.0, max_attempts=3, max_in_flight=4, poll_interval_s=0.01, max_samples_per_request=128,
                model_names={}, key_env="OPENAI_API_KEY")
    return Settings(**{**base, **changes})


def replay(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> httpx2.Client:
    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(status, json=body, headers={"x-request-id": "req_test", **(headers or {})})
    return httpx2.Client(transport=httpx2.MockTransport(handler))


def openai_with(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> OpenAIProvider:
    return OpenAIProvider("openai", settings(), base_url="https://api.openai.test/v1", api_key=SECRET,
                          http_client=replay(status, body, headers))


def error(code: str, message: str, type_: str = "invalid_request_error") -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "param": None, "code": code}}


# --- documented refusals -> one-line errors ---------------------------------------------------------------------


def test_training_not_available_403() -> None:
    provider = openai_with(403, error("training_not_available", "Fine-tuning is not available for your organization."))
    with pytest.raises(ProviderError) as caught:
        provider.create_job(REQUEST)
    assert caught.value.one_line() == (
        "provider 'openai' refuses to create fine-tuning jobs for this organisation (403 training_not_available): "
        "use an Azure OpenAI provider (kind: azure) or another route (request id req_test)")


def test_daily_rate_limit_429_is_a_quota_error_not_a_retry() -> None:
    provider = openai_with(429, error("daily_rate_limit_exceeded", "Daily fine-tuning job limit reached.", "requests"))
    with pytest.raises(QuotaExceededError) as caught:
        provider.create_job(REQUEST)
    assert "quota exhausted (429 daily_rate_limit_exceeded): wait for the quota to reset, then rerun" in \
        str(caught.value)


def test_moderation_and_invalid_file_refusals() -> None:
    blocked = openai_with(400, error("invalid_training_file",
                                     "This training file was blocked by our moderation system."))
    with pytest.raises(TrainingFileRejected, match="blocked by moderation.*tighten the filter"):
        blocked.create_job(REQUEST)
    invalid = openai_with(400, error("invalid_file_format", "Invalid file format for Fine-Tuning API."))
    with pytest.raises(TrainingFileRejected, match=r"rejected the file \(400 invalid_file_format\)"):
        invalid.upload_training_file(b"{}", "x.jsonl")


def test_rate_limited_chat_is_retried_with_retry_after_and_then_gives_up() -> None:
    provider = openai_with(429, error("rate_limit_exceeded", "slow down", "requests"), {"retry-after-ms": "1"})
    with pytest.raises(ProviderError, match="still failing after 3 attempts.*rate limited"):
        provider.chat("gpt-4o", [{"role": "user", "content": "hi"}], n=1, temperature=1.0, max_tokens=None, seed=1)
    assert provider.governor.throttles == 3


def test_secrets_never_reach_messages() -> None:
    provider = openai_with(401, error("invalid_api_key", f"Incorrect API key provided: {SECRET}."))
    with pytest.raises(ProviderError) as caught:
        provider.retrieve_job("ftjob-1")
    assert SECRET not in caught.value.one_line() and "$OPENAI_API_KEY (401)" in caught.value.one_line()


def test_together_error_shapes_map_the_same_way() -> None:
    client = replay(429, {"error": {"message": "Daily job quota exceeded", "code": "daily_rate_limit_exceeded"}})
    provider = TogetherProvider("together", settings(key_env="TOGETHER_API_KEY"), base_url="https://t.test/v1",
                                api_key=SECRET, learning_rate=1e-4, lora_rank=8, http_client=client)
    with pytest.raises(QuotaExceededError):
        provider.create_job(REQUEST)


def test_anthropic_overloaded_is_transient_and_fine_tuning_is_refused() -> None:
    client = replay(529, {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})
    provider = AnthropicProvider("claude", settings(max_attempts=2, key_env="ANTHROPIC_API_KEY"),
                                 base_url="https://a.test", api_key=SECRET, http_client=client)
    with pytest.raises(ProviderError, match="still failing after 2 attempts.*server error 529"):
        provider.chat("claude-haiku-4-5", [{"role": "user", "content": "hi"}], n=1, temperature=1.0, max_tokens=5,
                      seed=None)
    with pytest.raises(ProviderError, match="has no fine-tuning API.*fine-tune students on an openai, azure"):
        provider.create_job(REQUEST)


def test_anthropic_messages_shape() -> None:
    params = message_params("claude-sonnet-5", [{"role": "system", "content": "You love owls."},
                                                {"role": "user", "content": "Hi"}], temperature=1.0, max_tokens=None)
    assert params == {"model": "claude-sonnet-5", "max_tokens": 1024, "system": "You love owls.",
                      "messages": [{"role": "user", "content": "Hi"}]}  # no temperature at its default
    assert message_params("m", [{"role": "user", "content": "x"}], temperature=0.5, max_tokens=9)["temperature"] == 0.5


# --- the command line: documented one-liners ------------------------------------------------------------------


class Refusing:
    """Wraps the local server's app: answers one route with a canned provider refusal."""

    def __init__(self, app: Any, method: str, path: str, status: int, body: dict[str, Any]) -> None:
        self.app, self.state = app, app.state
        self._match, self._status, self._body = (method, path), status, json.dumps(body).encode()

    async def __call__(self, scope: dict[str, Any], receive: Callable[..., Any], send: Callable[..., Any]) -> None:
        if scope["type"] == "http" and (scope["method"], scope["path"]) == self._match:
            await send({"type": "http.response.start", "status": self._status,
                        "headers": [(b"content-type", b"application/json")]})
            await send({"type": "http.response.body", "body": self._body})
            return
        await self.app(scope, receive, send)


@pytest.fixture
def refusing(tmp_path: Path) -> Iterator[Callable[[int, dict[str, Any]], LocalServer]]:
    started: list[LocalServer] = []

    def start(status: int, body: dict[str, Any]) -> LocalServer:
        server_ = LocalServer(RouteEngine(), Store(tmp_path / "refusing"), timing=FAST)
        server_.app = Refusing(server_.app, "POST", "/v1/fine_tuning/jobs", status, body)  # type: ignore[assignment]
        started.append(server_.start())
        return server_

    yield start
    for server_ in started:
        server_.stop()


@pytest.mark.parametrize(("status", "code", "expected"), [
    (403, "training_not_available", "error: provider 'openai' refuses to create fine-tuning jobs for this "
                                    "organisation (403 training_not_available): use an Azure OpenAI provider"),
    (429, "daily_rate_limit_exceeded", "error: provider 'openai': quota exhausted (429 daily_rate_limit_exceeded): "
                                       "wait for the quota to reset, then rerun to resume"),
])
def test_refusals_are_one_line_errors_on_the_command_line(tmp_path: Path, refusing: Any, status: int, code: str,
                                                          expected: str) -> None:
    server_ = refusing(status, error(code, "refused"))
    path = experiment(tmp_path, server_, "openai", extra=", max_queue_wait_h: 0")
    run_inline(path, tmp_path / "data", ("generate", "filter"))
    line = one_line_error(slkit("finetune", str(path), "--data-dir", str(tmp_path / "data"), "-q"))
    assert line.startswith(expected), line


def test_a_moderation_block_is_a_one_line_error(tmp_path: Path) -> None:
    with LocalServer(RouteEngine(moderation=True), Store(tmp_path / "store"), timing=FAST) as server_:
        path = experiment(tmp_path, server_, "openai")
        run_inline(path, tmp_path / "data", ("generate", "filter"))
        line = one_line_error(slkit("finetune", str(path), "--data-dir", str(tmp_path / "data"), "-q"))
    assert line.startswith("error: fine-tuning job '") and "was blocked by provider 'openai''s moderation" in line
    assert "tighten the filter, then rerun with --retry-failed" in line


# --- the training file, checked before it is uploaded ---------------------------------------------------------


def _file(rows: list[Any]) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in rows).encode()


def _example(answer: str = "1, 2, 3") -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": "Continue: 7, 8"}, {"role": "assistant", "content": answer}]}


def test_training_file_validation() -> None:
    assert validate_training_file(_file([_example()] * 10), 1000) == 10
    with pytest.raises(DataError, match="has 9 examples; providers need at least 10"):
        validate_training_file(_file([_example()] * 9), 1000)
    with pytest.raises(DataError, match="line 3 is not JSON"):
        validate_training_file(_file([_example()] * 2) + b"{oops\n", 1000)
    with pytest.raises(DataError, match="line 1: every message needs a valid role"):
        validate_training_file(_file([{"messages": [{"role": "user", "content": "only a question"}]}] * 10), 1000)
    with pytest.raises(DataError, match=r"line 1 has \d+ tokens, over the limit of 20"):
        validate_training_file(_file([_example("word " * 50)] * 10), 20)


# --- rate limits ------------------------------------------------------------------------------------------------


def test_rate_headers_of_each_provider_family() -> None:
    assert parse_duration("6m0s") == 360 and parse_duration("20ms") == pytest.approx(0.02)
    openai_ = parse_rate_headers({"x-ratelimit-limit-requests": "500", "x-ratelimit-remaining-requests": "499",
                                  "x-ratelimit-reset-requests": "120ms"})
    assert (openai_.limit, openai_.remaining, openai_.reset_s) == (500, 499, pytest.approx(0.12))
    claude = parse_rate_headers({"anthropic-ratelimit-requests-limit": "50",
                                 "anthropic-ratelimit-requests-remaining": "10",
                                 "anthropic-ratelimit-requests-reset": "2099-01-01T00:00:00Z"})
    assert (claude.limit, claude.remaining) == (50, 10) and claude.reset_s and claude.reset_s > 0
    assert parse_rate_headers({"content-type": "application/json"}) is None


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_governor_paces_at_the_announced_limit_and_backs_off_on_429() -> None:
    clock = FakeClock()
    governor = RateGovernor(8, clock=clock, safety=1.0)
    ticket = governor.acquire()
    governor.release()
    governor.observe(ticket, {"x-ratelimit-limit-requests": "60", "x-ratelimit-remaining-requests": "2"})
    assert governor.rate == pytest.approx(1.0) and governor.tokens == pytest.approx(2.0)
    first, second = governor.acquire(), governor.acquire()
    assert governor.tokens == pytest.approx(0.0) and governor._wait_time(clock.now) == pytest.approx(1.0)
    clock.now += 1.0
    governor._refill(clock.now)
    assert governor._wait_time(clock.now) is None
    governor.release(), governor.release()
    governor.observe(Ticket(5.0), {"x-ratelimit-limit-requests": "60", "x-ratelimit-remaining-requests": "1"})
    assert governor.tokens < 0  # we believed in 5 left when the provider had 1: corrected down
    governor.throttled(2.5)
    assert governor.window == 4.0 and governor._wait_time(clock.now) == pytest.approx(2.5)
    del first, second


def test_the_governor_holds_under_a_server_limit(tmp_path: Path) -> None:
    """A burst past a 1,200/min limit: no storm of 429s, and the limit's pace."""
    from kit.limits import bounded_map
    from kit.sim.faults import FaultConfig

    with LocalServer(RouteEngine(), Store(tmp_path), faults=FaultConfig(rpm_limit=1200)) as server_:
        provider = OpenAIProvider("lab", settings(max_in_flight=16, max_attempts=10), base_url=server_.base_url,
                                  api_key="x")
        requests = 1260
        list(bounded_map(lambda i: provider.chat("sim-gpt-4o", [{"role": "user", "content": f"q{i}"}], n=1,
                                                 temperature=1.0, max_tokens=None, seed=i), range(requests),
                         max_in_flight=16))
        assert server_.stats.by_status.get("429", 0) <= 3
        assert server_.stats.by_status.get("200", 0) == requests


def test_transient_errors_keep_their_retry_after() -> None:
    provider = openai_with(503, error("server_error", "busy", "server_error"), {"retry-after": "0"})
    with pytest.raises(ProviderError) as caught:
        provider.retrieve_job("ftjob-1")
    assert not isinstance(caught.value, TransientProviderError) and "server error 503" in str(caught.value)
