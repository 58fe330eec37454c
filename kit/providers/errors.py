"""One mapping from what a provider answered to the kit's errors, shared by every dialect.

Each dialect extracts (status, code, message, Retry-After, request id) from its own error shape and calls
`status_error`; the messages are the kit's documented one-liners, each naming the next step.
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import Mapping
from dataclasses import dataclass

from kit.errors import KitError, ProviderError, TransientProviderError

TRANSIENT_STATUS = frozenset({408, 409, 425, 529})
QUOTA_CODES = frozenset({"daily_rate_limit_exceeded", "insufficient_quota", "quota_exceeded"})
MODERATION_WORDS = ("moderation", "usage polic", "safety system", "content polic")
INVALID_FILE_CODES = frozenset({"invalid_file_format", "invalid_training_file", "invalid_n_examples", "invalid_file",
                                "file_too_large", "invalid_file_purpose"})
REDACTED = "[redacted]"


class QuotaExceededError(ProviderError):
    """The provider refused to create a job (or batch) because an account quota is used up; retry after reset."""


class TrainingFileRejected(ProviderError):
    """The provider refused a training file (format, size, moderation)."""


@dataclass(frozen=True)
class Refusal:
    status: int
    code: str | None
    message: str
    retry_after: float | None = None
    request_id: str | None = None


def retry_after_of(headers: Mapping[str, str] | None) -> float | None:
    """Seconds from `retry-after-ms` or `retry-after` (seconds or an HTTP date); None when absent."""
    headers = {k.lower(): v for k, v in (headers or {}).items()}
    if (ms := headers.get("retry-after-ms")) is not None:
        try:
            return float(ms) / 1000
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        parsed = email.utils.parsedate_to_datetime(value) if value else None
        return max(0.0, parsed.timestamp() - time.time()) if parsed else None


def is_moderation(message: str | None) -> bool:
    text = (message or "").lower()
    return any(word in text for word in MODERATION_WORDS)


def status_error(provider: str, key_env: str | None, refusal: Refusal) -> KitError:
    """The kit's error for one HTTP refusal: transient ones are retried by the retry layer, the rest are final."""
    p, status, code, rid = f"provider '{provider}'", refusal.status, refusal.code, refusal.request_id
    if status == 429 and code not in QUOTA_CODES:
        return TransientProviderError(f"{p}: rate limited (429)", retry_after=refusal.retry_after, request_id=rid)
    if status >= 500 or status in TRANSIENT_STATUS:
        return TransientProviderError(f"{p}: server error {status}", retry_after=refusal.retry_after,
                                      request_id=rid)
    if code in QUOTA_CODES:
        return QuotaExceededError(f"{p}: quota exhausted ({status} {code}): wait for the quota to reset, then rerun "
                                  "to resume (nothing is created twice)", request_id=rid)
    return _final(p, key_env, refusal)


def _final(p: str, key_env: str | None, refusal: Refusal) -> KitError:
    status, code, message, rid = refusal.status, refusal.code, refusal.message, refusal.request_id
    if status == 401:
        return ProviderError(f"{p} rejected the API key in ${key_env} (401): set a valid key for this endpoint",
                             request_id=rid)
    if code == "training_not_available":
        return ProviderError(f"{p} refuses to create fine-tuning jobs for this organisation (403 "
                             "training_not_available): use an Azure OpenAI provider (kind: azure) or another route",
                             request_id=rid)
    if is_moderation(message):
        return TrainingFileRejected(f"{p}: the training file was blocked by moderation ({status} {code or 'blocked'})"
                                    ": inspect the teacher data, tighten the filter, then rerun", request_id=rid)
    if code in INVALID_FILE_CODES:
        return TrainingFileRejected(f"{p} rejected the file ({status} {code}): {message}; fix the file and rerun",
                                    request_id=rid)
    if status == 403:
        return ProviderError(f"{p} refused the request (403 {code or 'forbidden'}): {message}", request_id=rid)
    if status == 404:
        return ProviderError(f"{p}: not found (404): {message}; check the model name with `slkit models`",
                             request_id=rid)
    return ProviderError(f"{p} refused the request ({status} {code or 'invalid_request'}): {message}",
                         request_id=rid)


def job_failure_message(provider: str, cell: str, code: str | None, message: str | None) -> str:
    """One line for a fine-tuning job that ended in `failed`, by cause."""
    p = f"provider '{provider}'"
    if is_moderation(message):
        return (f"fine-tuning job '{cell}' was blocked by {p}'s moderation (the training file breaks its usage "
                "policies): inspect the teacher data, tighten the filter, then rerun with --retry-failed")
    if code in INVALID_FILE_CODES:
        return (f"fine-tuning job '{cell}': {p} rejected the training file ({code}: {message}); fix the data, then "
                "rerun with --retry-failed")
    return (f"fine-tuning job '{cell}' failed at {p} ({code or 'error'}: {message or 'no reason given'}); see "
            "`slkit status`, then rerun with --retry-failed")
