"""The one retry layer: transient failures are retried honouring Retry-After; refusals are not retried."""

import pytest

from kit.errors import ProviderError, TransientProviderError
from kit.limits import bounded_map, call_with_retries


def classify(exc):
    return exc if isinstance(exc, ProviderError) else None


def flaky(failures):
    calls = []

    def fn():
        calls.append(1)
        if len(calls) <= len(failures):
            raise failures[len(calls) - 1]
        return "ok"
    return fn, calls


def test_transient_errors_are_retried_and_retry_after_is_honoured():
    sleeps = []
    fn, calls = flaky([TransientProviderError("429", retry_after=1.5), TransientProviderError("500")])
    assert call_with_retries(fn, classify=classify, max_attempts=5, what="x", sleep=sleeps.append) == "ok"
    assert len(calls) == 3
    assert sleeps[0] == 1.5 and 0 < sleeps[1] <= 1.0


def test_refusals_are_not_retried():
    fn, calls = flaky([ProviderError("401 bad key")])
    with pytest.raises(ProviderError, match="401"):
        call_with_retries(fn, classify=classify, max_attempts=5, what="x", sleep=lambda s: None)
    assert len(calls) == 1


def test_giving_up_says_what_to_do():
    fn, calls = flaky([TransientProviderError("429")] * 10)
    with pytest.raises(ProviderError) as info:
        call_with_retries(fn, classify=classify, max_attempts=3, what="chat", sleep=lambda s: None)
    assert len(calls) == 3
    assert "still failing after 3 attempts" in str(info.value) and "rerun" in str(info.value)
    assert not isinstance(info.value, TransientProviderError)


def test_unknown_errors_pass_through_unchanged():
    fn, calls = flaky([KeyError("bug")])
    with pytest.raises(KeyError):
        call_with_retries(fn, classify=classify, max_attempts=5, what="x", sleep=lambda s: None)
    assert len(calls) == 1


def test_bounded_map_limits_concurrency_and_returns_everything():
    import threading
    import time
    running, peak, lock = [0], [0], threading.Lock()

    def work(i):
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        time.sleep(0.01)
        with lock:
            running[0] -= 1
        return i * i
    got = dict(bounded_map(work, range(40), max_in_flight=4))
    assert got == {i: i * i for i in range(40)}
    assert peak[0] <= 4
