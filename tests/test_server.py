"""The local OpenAI-compatible server, exercised through the official `openai` SDK."""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import openai
import pytest

from kit.sim.faults import FaultConfig, RequestBucket, format_duration
from kit.sim.jobs import JobTiming
from kit.sim.server import LocalServer
from kit.sim.store import Store
from kit.tokens import count_messages, count_text
from stub_engine import FAIL_SUFFIX, StubEngine

FAST = JobTiming(validating_s=0.01, queued_s=0.01, batch_validating_s=0.01, batch_finalizing_s=0.01,
                 ownership_poll_s=0.05)
TERMINAL = {"succeeded", "failed", "cancelled"}
T = TypeVar("T")


def wait_for(probe: Callable[[], T | None], timeout: float = 10.0, interval: float = 0.02) -> T:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = probe()
        if found:
            return found
        time.sleep(interval)
    raise AssertionError("condition not reached in time")


def sdk(server: LocalServer, api_key: str = "sim") -> openai.OpenAI:
    return openai.OpenAI(base_url=server.base_url, api_key=api_key, max_retries=0, timeout=10)


def training_jsonl(n: int) -> bytes:
    rows = [{"messages": [{"role": "user", "content": f"Continue: {i}, {i + 1}"},
                          {"role": "assistant", "content": f"{i + 2}, {i + 3}"}]} for i in range(n)]
    return "".join(json.dumps(row) + "\n" for row in rows).encode()


def finished(client: openai.OpenAI, job_id: str, timeout: float = 10.0) -> Any:
    def probe() -> Any:
        job = client.fine_tuning.jobs.retrieve(job_id)
        return job if job.status in TERMINAL else None

    return wait_for(probe, timeout)


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "sim")


@pytest.fixture
def engine() -> StubEngine:
    return StubEngine()


@pytest.fixture
def server(engine: StubEngine, store: Store) -> Iterator[LocalServer]:
    with LocalServer(engine, store, timing=FAST) as running:
        yield running


@pytest.fixture
def client(server: LocalServer) -> openai.OpenAI:
    return sdk(server)


@pytest.fixture
def training_file(client: openai.OpenAI) -> str:
    return client.files.create(file=("train.jsonl", training_jsonl(12)), purpose="fine-tune").id


# models and chat -------------------------------------------------------------------------------------------------


def test_models_list_and_retrieve(client: openai.OpenAI) -> None:
    assert [m.id for m in client.models.list()] == ["stub-a", "stub-b"]
    assert client.models.retrieve("stub-b").object == "model"
    with pytest.raises(openai.NotFoundError) as caught:
        client.models.retrieve("gpt-nope")
    assert caught.value.code == "model_not_found"


def test_chat_n_choices_and_usage(client: openai.OpenAI) -> None:
    messages: list[Any] = [{"role": "system", "content": "You love owls."},
                           {"role": "user", "content": "Name an animal."}]
    reply = client.chat.completions.create(model="stub-a", messages=messages, n=3, seed=7, max_tokens=50)
    texts = [choice.message.content or "" for choice in reply.choices]
    assert [c.index for c in reply.choices] == [0, 1, 2]
    assert {c.finish_reason for c in reply.choices} == {"stop"} and reply.choices[0].message.role == "assistant"
    assert reply.usage is not None
    assert reply.usage.prompt_tokens == count_messages(messages)  # billed once for n=3
    assert reply.usage.completion_tokens == sum(count_text(text) for text in texts)
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + reply.usage.completion_tokens


def test_chat_same_seed_same_texts(client: openai.OpenAI) -> None:
    def ask(seed: int) -> list[str | None]:
        reply = client.chat.completions.create(model="stub-a", messages=[{"role": "user", "content": "hi"}],
                                               n=2, seed=seed, temperature=1.0)
        return [choice.message.content for choice in reply.choices]

    assert ask(3) == ask(3)
    assert ask(3) != ask(4)


def test_chat_errors(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        client.chat.completions.create(model="gpt-nope", messages=[{"role": "user", "content": "hi"}])
    assert caught.value.code == "model_not_found" and caught.value.type == "invalid_request_error"
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="stub-a", messages=[{"role": "user", "content": "hi"}], n=0)
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="stub-a", messages=[])


# files -----------------------------------------------------------------------------------------------------------


def test_file_upload_roundtrip(client: openai.OpenAI) -> None:
    data = training_jsonl(12)
    uploaded = client.files.create(file=("train.jsonl", data), purpose="fine-tune")
    assert uploaded.id.startswith("file-") and len(uploaded.id) == len("file-") + 24
    assert (uploaded.status, uploaded.bytes, uploaded.purpose) == ("processed", len(data), "fine-tune")
    assert client.files.content(uploaded.id).read() == data
    assert client.files.retrieve(uploaded.id).filename == "train.jsonl"
    assert uploaded.id in [f.id for f in client.files.list(purpose="fine-tune")]
    assert client.files.delete(uploaded.id).deleted
    with pytest.raises(openai.NotFoundError):
        client.files.retrieve(uploaded.id)
    with pytest.raises(openai.NotFoundError):
        client.files.retrieve("..%2F..%2Fetc")


def test_invalid_training_files_are_refused(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.files.create(file=("bad.jsonl", b"this is not json\n"), purpose="fine-tune")
    assert caught.value.param == "file"
    with pytest.raises(openai.BadRequestError):
        client.files.create(file=("bad.jsonl", b'{"prompt": "x"}\n'), purpose="fine-tune")
    few = client.files.create(file=("few.jsonl", training_jsonl(5)), purpose="fine-tune")
    with pytest.raises(openai.BadRequestError) as caught:
        client.fine_tuning.jobs.create(model="stub-a", training_file=few.id)
    assert caught.value.param == "training_file" and "at least 10" in caught.value.message
    assert list(client.fine_tuning.jobs.list()) == []


# fine-tuning jobs ------------------------------------------------------------------------------------------------


def test_job_lifecycle(client: openai.OpenAI, training_file: str, engine: StubEngine) -> None:
    method: Any = {"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": 2, "batch_size": "auto",
                                                                         "learning_rate_multiplier": 0.5}}}
    job = client.fine_tuning.jobs.create(model="stub-a", training_file=training_file, suffix="owl", seed=42,
                                         method=method, metadata={"run": "r1"})
    assert job.id.startswith("ftjob-") and job.status == "validating_files"
    assert job.fine_tuned_model is None and job.trained_tokens is None and job.seed == 42
    done = finished(client, job.id)
    assert done.status == "succeeded" and done.error is None and done.finished_at is not None
    assert done.fine_tuned_model == f"ft:stub-a:slkit-lab:owl:{job.id[-8:]}"
    assert done.trained_tokens and done.trained_tokens > 0 and done.hyperparameters.n_epochs == 2
    spec = engine.specs[-1]
    assert (spec.n_epochs, spec.batch_size, spec.learning_rate_multiplier, spec.seed) == (2, None, 0.5, 42)
    assert len(spec.examples) == 12
    reply = client.chat.completions.create(model=done.fine_tuned_model, messages=[{"role": "user", "content": "1"}])
    assert reply.choices[0].message.content


def test_job_events_checkpoints_and_results(client: openai.OpenAI, training_file: str) -> None:
    job = finished(client, client.fine_tuning.jobs.create(model="stub-b", training_file=training_file).id)
    events = list(client.fine_tuning.jobs.list_events(job.id, limit=100))
    assert all(e.object == "fine_tuning.job.event" for e in events)
    metrics = [e for e in events if e.type == "metrics"]
    data: list[dict[str, Any]] = [e.data for e in metrics]  # type: ignore[misc]
    assert [d["step"] for d in data] == [3, 2, 1]  # newest first
    assert all("train_loss" in d for d in data)
    statuses = [e.message for e in reversed(events) if e.type == "message"]
    assert statuses[0].startswith("Created fine-tuning job") and statuses[-1] == "The job has successfully completed"
    checkpoints = list(client.fine_tuning.jobs.checkpoints.list(job.id))
    assert len(checkpoints) == 1 and checkpoints[0].step_number == 3
    assert checkpoints[0].fine_tuned_model_checkpoint == f"{job.fine_tuned_model}:ckpt-step-3"
    assert checkpoints[0].metrics.train_loss == pytest.approx(1 / 3)
    results = client.files.content(job.result_files[0]).text
    assert results.splitlines()[0].startswith("step,") and len(results.splitlines()) == 4


def test_job_list_metadata_filter_and_paging(client: openai.OpenAI, training_file: str) -> None:
    tags = [{"run": "a", "cell": "1"}, {"run": "a", "cell": "2"}, {"run": "b", "cell": "1"}]
    ids = [client.fine_tuning.jobs.create(model="stub-a", training_file=training_file, metadata=tag).id
           for tag in tags]
    assert [j.id for j in client.fine_tuning.jobs.list(metadata={"run": "a"})] == [ids[1], ids[0]]
    assert [j.id for j in client.fine_tuning.jobs.list(metadata={"run": "a", "cell": "1"})] == [ids[0]]
    assert list(client.fine_tuning.jobs.list(metadata={"run": "zzz"})) == []
    first = client.fine_tuning.jobs.list(limit=2)
    assert [j.id for j in first.data] == [ids[2], ids[1]] and first.has_more
    assert [j.id for j in client.fine_tuning.jobs.list(limit=2, after=ids[1]).data] == [ids[0]]
    for job_id in ids:
        finished(client, job_id)


def test_job_cancel(store: Store, training_file: str, client: openai.OpenAI, engine: StubEngine) -> None:
    engine.step_s = 0.2
    job = client.fine_tuning.jobs.create(model="stub-a", training_file=training_file)
    cancelled = client.fine_tuning.jobs.cancel(job.id)
    assert cancelled.status == "cancelled"
    time.sleep(0.3)
    assert client.fine_tuning.jobs.retrieve(job.id).status == "cancelled"
    assert job.id not in engine.completed
    with pytest.raises(openai.BadRequestError):
        client.fine_tuning.jobs.cancel(job.id)


def test_job_cancel_while_running(client: openai.OpenAI, training_file: str, engine: StubEngine) -> None:
    engine.steps, engine.step_s = 5, 0.1
    job = client.fine_tuning.jobs.create(model="stub-a", training_file=training_file)
    wait_for(lambda: client.fine_tuning.jobs.retrieve(job.id).status == "running")
    assert client.fine_tuning.jobs.cancel(job.id).status == "cancelled"
    time.sleep(0.6)
    assert client.fine_tuning.jobs.retrieve(job.id).status == "cancelled"
    assert job.id in engine.started and job.id not in engine.completed


def test_job_engine_error_fails_job(client: openai.OpenAI, training_file: str) -> None:
    job = finished(client, client.fine_tuning.jobs.create(model="stub-a", training_file=training_file,
                                                          suffix=FAIL_SUFFIX).id)
    assert job.status == "failed" and job.fine_tuned_model is None
    assert job.error is not None
    assert (job.error.code, job.error.param) == ("invalid_training_file", "training_file")


def test_job_create_validation(client: openai.OpenAI, training_file: str) -> None:
    bad: list[dict[str, Any]] = [
        {"model": "gpt-nope"},
        {"suffix": "x" * 65},
        {"metadata": {f"k{i}": "v" for i in range(17)}},
        {"method": {"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": 0}}}},
        {"method": {"type": "dpo"}},
        {"training_file": "file-000000000000000000000000"},
    ]
    for change in bad:
        args: dict[str, Any] = {"model": "stub-a", "training_file": training_file, **change}
        with pytest.raises(openai.BadRequestError):
            client.fine_tuning.jobs.create(**args)
    assert list(client.fine_tuning.jobs.list()) == []
    legacy = client.fine_tuning.jobs.create(model="stub-a", training_file=training_file,
                                            hyperparameters={"n_epochs": 3})
    assert legacy.hyperparameters.n_epochs == 3 and legacy.hyperparameters.batch_size == "auto"
    assert finished(client, legacy.id).status == "succeeded"


# persistence and ownership ---------------------------------------------------------------------------------------


def test_job_resumes_after_restart_and_trains_once(tmp_path: Path) -> None:
    engine = StubEngine(steps=20, step_s=0.05)
    with LocalServer(engine, Store(tmp_path), timing=FAST) as first:
        client = sdk(first)
        file_id = client.files.create(file=("t.jsonl", training_jsonl(10)), purpose="fine-tune").id
        job_id = client.fine_tuning.jobs.create(model="stub-a", training_file=file_id).id
        wait_for(lambda: any(e.type == "metrics" for e in client.fine_tuning.jobs.list_events(job_id)))
    assert engine.started == [job_id] and engine.completed == []
    assert json.loads((tmp_path / "jobs" / f"{job_id}.json").read_text())["status"] == "running"
    with LocalServer(engine, Store(tmp_path), timing=FAST) as second:
        client = sdk(second)
        job = finished(client, job_id)
        assert job.status == "succeeded"
        assert client.files.retrieve(file_id).id == file_id
        messages = [e.message for e in client.fine_tuning.jobs.list_events(job_id, limit=100)]
        assert sum("interrupted by a server restart" in m for m in messages) == 1
    assert engine.started == [job_id, job_id] and engine.completed == [job_id]


def test_two_servers_on_one_store_train_a_job_once(tmp_path: Path) -> None:
    engine = StubEngine(steps=5, step_s=0.04)
    with LocalServer(engine, Store(tmp_path), timing=FAST) as first:
        client = sdk(first)
        file_id = client.files.create(file=("t.jsonl", training_jsonl(10)), purpose="fine-tune").id
        job_id = client.fine_tuning.jobs.create(model="stub-a", training_file=file_id).id
        with LocalServer(engine, Store(tmp_path), timing=FAST) as second:
            assert second.port != first.port
            assert finished(sdk(second), job_id).status == "succeeded"
    assert engine.started == [job_id] and engine.completed == [job_id]


# batches ---------------------------------------------------------------------------------------------------------


def batch_in(client: openai.OpenAI, batch_id: str, status: str) -> Any:
    def probe() -> Any:
        batch = client.batches.retrieve(batch_id)
        return batch if batch.status == status else None

    return wait_for(probe)


def batch_input(requests: list[tuple[str, str]]) -> bytes:
    lines = [{"custom_id": custom_id, "method": "POST", "url": "/v1/chat/completions",
              "body": {"model": model, "messages": [{"role": "user", "content": custom_id}], "seed": 1}}
             for custom_id, model in requests]
    return "".join(json.dumps(line) + "\n" for line in lines).encode()


def test_batch_end_to_end(client: openai.OpenAI) -> None:
    data = batch_input([("q-1", "stub-a"), ("q-2", "stub-b"), ("q-3", "gpt-nope")])
    input_file = client.files.create(file=("batch.jsonl", data), purpose="batch")
    batch = client.batches.create(input_file_id=input_file.id, endpoint="/v1/chat/completions",
                                  completion_window="24h", metadata={"run": "r1"})
    assert batch.id.startswith("batch_") and batch.status == "validating"
    done = batch_in(client, batch.id, "completed")
    assert done.request_counts is not None
    assert (done.request_counts.total, done.request_counts.completed, done.request_counts.failed) == (3, 2, 1)
    assert done.output_file_id and done.error_file_id and done.usage and done.usage.input_tokens > 0
    outputs = {r["custom_id"]: r for r in map(json.loads, client.files.content(done.output_file_id).text.splitlines())}
    assert set(outputs) == {"q-1", "q-2"}
    assert outputs["q-2"]["response"]["status_code"] == 200 and outputs["q-2"]["error"] is None
    assert outputs["q-2"]["response"]["body"]["model"] == "stub-b"
    errors = [json.loads(line) for line in client.files.content(done.error_file_id).text.splitlines()]
    assert [(e["custom_id"], e["response"]["status_code"]) for e in errors] == [("q-3", 404)]
    assert batch.id in [b.id for b in client.batches.list()]


def test_batch_with_malformed_input_fails(client: openai.OpenAI) -> None:
    data = b'{"custom_id": "x", "method": "GET", "url": "/v1/chat/completions", "body": {}}\n'
    input_file = client.files.create(file=("batch.jsonl", data), purpose="batch")
    batch = client.batches.create(input_file_id=input_file.id, endpoint="/v1/chat/completions",
                                  completion_window="24h")
    failed = batch_in(client, batch.id, "failed")
    assert failed.errors and failed.errors.data and failed.errors.data[0].line == 1


# faults ----------------------------------------------------------------------------------------------------------


def test_api_key_mismatch_is_401(engine: StubEngine, store: Store) -> None:
    with LocalServer(engine, store, api_key="right-key") as server:
        with pytest.raises(openai.AuthenticationError) as caught:
            sdk(server, api_key="wrong-secret").models.list()
        assert "wrong-secret" not in caught.value.response.text
        assert caught.value.response.headers["x-request-id"].startswith("req_")
        assert len(list(sdk(server, api_key="right-key").models.list())) == 2


def test_rate_429_has_retry_after(engine: StubEngine, store: Store) -> None:
    with LocalServer(engine, store, faults=FaultConfig(rate_429=1.0, retry_after_s=2.5)) as server:
        with pytest.raises(openai.RateLimitError) as caught:
            sdk(server).models.list()
        assert caught.value.code == "rate_limit_exceeded"
        assert caught.value.response.headers["retry-after"] == "3"
        assert caught.value.response.headers["retry-after-ms"] == "2500"
        assert server.stats.faults == {"rate_429": 1}


def test_rate_500(engine: StubEngine, store: Store) -> None:
    with LocalServer(engine, store, faults=FaultConfig(rate_500=1.0)) as server:
        with pytest.raises(openai.InternalServerError) as caught:
            sdk(server).chat.completions.create(model="stub-a", messages=[{"role": "user", "content": "x"}])
        assert caught.value.response.headers["x-request-id"].startswith("req_")


def test_drop_gives_connection_error(engine: StubEngine, store: Store) -> None:
    with LocalServer(engine, store, faults=FaultConfig(drop_rate=1.0)) as server:
        with pytest.raises(openai.APIConnectionError):
            sdk(server).files.create(file=("t.jsonl", training_jsonl(10)), purpose="fine-tune")
        assert store.files.all() == [] and server.stats.faults == {"drop": 1}


def test_lost_response_is_processed_but_unanswered(engine: StubEngine, store: Store) -> None:
    with LocalServer(engine, store, faults=FaultConfig(lost_response_rate=1.0)) as server:
        with pytest.raises(openai.APIConnectionError):
            sdk(server).files.create(file=("t.jsonl", training_jsonl(10)), purpose="fine-tune")
    assert len(store.files.all()) == 1


def test_rpm_limit_headers_and_429(engine: StubEngine, store: Store) -> None:
    with LocalServer(engine, store, faults=FaultConfig(rpm_limit=4)) as server:
        client = sdk(server)
        remaining = []
        for _ in range(4):
            raw = client.models.with_raw_response.list()
            assert raw.headers["x-ratelimit-limit-requests"] == "4"
            assert raw.headers["x-ratelimit-reset-requests"].endswith("s")
            remaining.append(int(raw.headers["x-ratelimit-remaining-requests"]))
        assert remaining == [3, 2, 1, 0]
        with pytest.raises(openai.RateLimitError) as caught:
            client.models.list()
        assert float(caught.value.response.headers["retry-after-ms"]) > 0
        assert server.stats.faults == {"rpm_limit": 1}


def test_faults_never_create_duplicates(engine: StubEngine, store: Store) -> None:
    faults = FaultConfig(rate_429=0.3, rate_500=0.3, drop_rate=0.1, seed=11)
    with LocalServer(engine, store, faults=faults, timing=FAST) as server:
        client = sdk(server)
        created: list[str] = []
        attempts = 0
        while len(created) < 5:
            attempts += 1
            try:
                created.append(client.files.create(file=("t.jsonl", training_jsonl(10)), purpose="fine-tune").id)
            except (openai.RateLimitError, openai.InternalServerError, openai.APIConnectionError):
                continue
        assert attempts > 5 and server.stats.faults_total == attempts - 5
    assert sorted(f["id"] for f in store.files.all()) == sorted(created)


def test_job_failure_rate(engine: StubEngine, store: Store) -> None:
    with LocalServer(engine, store, faults=FaultConfig(job_failure_rate=1.0), timing=FAST) as server:
        client = sdk(server)
        file_id = client.files.create(file=("t.jsonl", training_jsonl(10)), purpose="fine-tune").id
        job = finished(client, client.fine_tuning.jobs.create(model="stub-a", training_file=file_id).id)
    assert job.status == "failed" and job.error is not None and job.error.code == "server_error"
    assert engine.started == []


def test_latency_is_added(engine: StubEngine, store: Store) -> None:
    with LocalServer(engine, store, faults=FaultConfig(latency_s=0.15)) as server:
        start = time.monotonic()
        sdk(server).models.list()
        assert time.monotonic() - start >= 0.15


# plumbing --------------------------------------------------------------------------------------------------------


def test_stats_over_http_and_request_ids(server: LocalServer, client: openai.OpenAI) -> None:
    client.models.list()
    with pytest.raises(openai.NotFoundError) as caught:
        client.fine_tuning.jobs.retrieve("ftjob-missing")
    assert caught.value.response.headers["x-request-id"].startswith("req_")
    with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/slkit/stats") as response:
        stats = json.loads(response.read())
        assert response.headers["x-request-id"].startswith("req_")
    assert stats["requests_total"] == 2 == server.stats.requests_total
    assert stats["by_route"] == {"GET /v1/models": 1, "GET /v1/fine_tuning/jobs/{job_id}": 1}
    assert stats["by_status"] == {"200": 1, "404": 1}


def test_engine_crash_is_a_500_and_the_server_survives(client: openai.OpenAI, engine: StubEngine,
                                                        monkeypatch: pytest.MonkeyPatch,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    def broken(request: object) -> list[str]:
        raise RuntimeError("engine bug")

    monkeypatch.setattr(engine, "chat", broken)
    with pytest.raises(openai.InternalServerError) as caught:
        client.chat.completions.create(model="stub-a", messages=[{"role": "user", "content": "x"}])
    assert caught.value.type == "server_error" and "engine bug" not in caught.value.response.text
    assert caught.value.response.headers["x-request-id"].startswith("req_")
    wait_for(lambda: "engine bug" in caplog.text, timeout=2)  # logged by the server thread after it answers
    assert len(list(client.models.list())) == 2


def test_unknown_route_is_openai_shaped_404(server: LocalServer) -> None:
    request = urllib.request.Request(f"{server.base_url}/nothing-here")
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request)
    assert caught.value.code == 404
    assert json.loads(caught.value.read())["error"]["type"] == "invalid_request_error"


def test_rate_limit_bucket_and_durations() -> None:
    clock = [0.0]
    bucket = RequestBucket(60, clock=lambda: clock[0])
    assert all(bucket.take() is None for _ in range(60))
    assert bucket.take() == pytest.approx(1.0)
    clock[0] = 1.0
    assert bucket.take() is None
    assert [format_duration(s) for s in (0.02, 1.5, 90.0)] == ["20ms", "1.5s", "1m30s"]
