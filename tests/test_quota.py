"""Quota-aware scheduling: jobs beyond a route's concurrent-job and jobs-per-window limits wait in the queue instead
of failing; a waiting run can be left and resumed later; a provider's quota refusal defers instead of failing."""

from __future__ import annotations

from pathlib import Path

import pytest

from kit.config import load_config
from kit.providers.errors import QuotaExceededError, Refusal, status_error
from kit.providers.openai_dialect import OpenAIProvider
from kit.runs import open_run
from kit.sim.server import LocalServer
from kit.sim.store import Store
from kit.stages.quota import quota_for
from routes_common import experiment, run_inline, server  # noqa: F401

CELLS = 4
ACTIVE = frozenset({"validating_files", "queued", "running"})


def _jobs(path: Path, data: Path, run_id: str = "r1") -> list:
    with open_run(load_config(path), path, data_root=data, env={}, run_id=run_id) as run:
        return run.ledger.jobs()


def test_limits_come_from_the_catalogue_and_config_overrides_them(tmp_path: Path, server: LocalServer) -> None:
    path = experiment(tmp_path, server, "openai")
    text = path.read_text().replace("kind: sim, dialect: openai, base_url",
                                    "kind: openai, max_jobs_per_day: 5, base_url")
    path.write_text(text.replace("sim-gpt-4.1-nano", "gpt-4.1-mini-2025-04-14"))
    with open_run(load_config(path), path, data_root=tmp_path / "d", env={}) as run:
        quota = quota_for(run, "openai", "gpt-4.1-mini-2025-04-14")  # catalogue: 3 at once, 8 per 30 h
        assert (quota.max_concurrent, quota.max_per_window, quota.window_s) == (3, 5, 30 * 3600)
        assert quota.group == ("openai", "gpt-4.1-mini-2025-04-14")
        assert quota_for(run, "azure", "sim-gpt-4.1-nano").max_concurrent is None  # the sim route has no caps


def test_at_most_n_jobs_run_at_once(tmp_path: Path, server: LocalServer, monkeypatch: pytest.MonkeyPatch) -> None:
    path = experiment(tmp_path, server, "openai", extra=", max_concurrent_jobs: 1")
    store, seen = Store(tmp_path / "provider"), []
    original = OpenAIProvider.create_job

    def spy(self: OpenAIProvider, request):  # type: ignore[no-untyped-def]
        seen.append(sum(1 for j in store.jobs.all() if j["status"] in ACTIVE and j["model"] == request.model))
        return original(self, request)

    monkeypatch.setattr(OpenAIProvider, "create_job", spy)
    run_inline(path, tmp_path / "data", ("generate", "filter", "finetune"))
    assert len(seen) == CELLS and max(seen) == 0, f"jobs already running at each create: {seen}"


def test_jobs_per_window_wait_for_the_window(tmp_path: Path, server: LocalServer) -> None:
    path = experiment(tmp_path, server, "openai", extra=", max_jobs_per_day: 1, jobs_window_h: 0.0004")
    run_inline(path, tmp_path / "data", ("generate", "filter", "finetune"), run_id="r1")
    created = sorted(j.created_at for j in _jobs(path, tmp_path / "data") if j.base_model == "sim-gpt-4.1-nano")
    assert len(created) == 2 and created[1] - created[0] >= 0.0004 * 3600 * 0.95


def test_a_waiting_run_stops_and_resumes_later(tmp_path: Path, server: LocalServer) -> None:
    data = tmp_path / "data"
    waiting = experiment(tmp_path, server, "openai", extra=", max_jobs_per_day: 1, max_queue_wait_h: 0",
                         name="waiting.yaml")
    with pytest.raises(QuotaExceededError, match=r"2 fine-tuning job\(s\) wait for the provider's job quota.*rerun"):
        run_inline(waiting, data, ("generate", "filter", "finetune"), run_id="r1")
    jobs = _jobs(waiting, data)
    assert len(jobs) == 2 and {j.state for j in jobs} == {"succeeded"}  # one per model; the rest never started
    later = experiment(tmp_path, server, "openai", extra=", max_jobs_per_day: 1, jobs_window_h: 0.0002",
                       name="later.yaml")
    run_inline(later, data, ("finetune",), run_id="r1")
    assert len(Store(tmp_path / "provider").jobs.all()) == CELLS
    assert [j.state for j in _jobs(later, data)] == ["succeeded"] * CELLS


def test_a_provider_quota_refusal_defers_then_resumes(tmp_path: Path, server: LocalServer,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    path, data = experiment(tmp_path, server, "openai", extra=", max_queue_wait_h: 0"), tmp_path / "data"
    run_inline(path, data, ("generate", "filter"), run_id="r1")
    refusal = Refusal(429, "daily_rate_limit_exceeded", "Daily rate limit exceeded for fine-tuning jobs.")

    def refuse(self: OpenAIProvider, request):  # type: ignore[no-untyped-def]
        raise status_error(self.name, "OPENAI_API_KEY", refusal)

    monkeypatch.setattr(OpenAIProvider, "create_job", refuse)
    with pytest.raises(QuotaExceededError) as caught:
        run_inline(path, data, ("finetune",), run_id="r1")
    assert caught.value.one_line() == ("provider 'openai': quota exhausted (429 daily_rate_limit_exceeded): wait for "
                                       "the quota to reset, then rerun to resume (nothing is created twice)")
    assert Store(tmp_path / "provider").jobs.all() == []
    monkeypatch.undo()
    run_inline(path, data, ("finetune",), run_id="r1")
    assert len(Store(tmp_path / "provider").jobs.all()) == CELLS
