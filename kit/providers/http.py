"""A thin JSON-over-HTTP client for the dialects without an SDK in the kit (Together and Fireworks fine-tuning, Azure
Resource Manager deployments): the same retry layer, rate governor and error vocabulary as the SDK routes."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import httpx2

from kit.errors import KitError, TransientProviderError
from kit.limits import RateGovernor, call_with_retries
from kit.providers.errors import REDACTED, Refusal, retry_after_of, status_error

NOT_FOUND = 404
CONFLICT = 409
REQUEST_ID_HEADERS = ("x-request-id", "request-id", "x-ms-request-id")


class HttpStatusError(Exception):
    """A non-2xx answer, kept whole until the classifier maps it."""

    def __init__(self, response: httpx2.Response) -> None:
        super().__init__(f"HTTP {response.status_code}")
        self.status = response.status_code
        self.headers = dict(response.headers)
        try:
            self.body: Any = response.json()
        except ValueError:
            self.body = {"message": response.text[:500]}

    @property
    def request_id(self) -> str | None:
        return next((self.headers[h] for h in REQUEST_ID_HEADERS if h in self.headers), None)


def error_fields(body: Any) -> tuple[str | None, str]:
    """(code, message) from the error shapes in use: OpenAI/Together `{"error": {"code", "message"}}`, Google-style
    Fireworks `{"error": {"code": 409, "status", "message"}}`, ARM `{"error": {"code", "message"}}`, flat bodies."""
    error = body.get("error", body) if isinstance(body, dict) else {}
    if isinstance(error, str):
        return None, error
    if not isinstance(error, dict):
        return None, str(body)[:300]
    code = error.get("code") if isinstance(error.get("code"), str) else error.get("status") or error.get("type")
    return (str(code) if code else None), str(error.get("message") or body.get("message") or "")


class JsonApi:
    """Requests against one API root; every call is governed, retried when transient, and mapped to kit errors."""

    def __init__(self, provider: str, base_url: str, headers: Mapping[str, str], *, key_env: str | None,
                 secrets: tuple[str, ...], timeout_s: float, max_attempts: int, governor: RateGovernor,
                 http_client: httpx2.Client | None = None) -> None:
        self.provider, self.key_env = provider, key_env
        self._secrets = tuple(s for s in secrets if s)
        self._client = http_client or httpx2.Client(timeout=timeout_s)
        self._base = base_url.rstrip("/")
        self._headers = dict(headers)
        self._max_attempts = max_attempts
        self.governor = governor

    def _clean(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, REDACTED)
        return text

    def classify(self, exc: BaseException) -> KitError | None:
        p = f"provider '{self.provider}'"
        if isinstance(exc, httpx2.TimeoutException):
            return TransientProviderError(f"{p}: request timed out")
        if isinstance(exc, httpx2.TransportError):
            return TransientProviderError(f"{p}: connection failed ({self._clean(str(exc))})")
        if not isinstance(exc, HttpStatusError):
            return None
        code, message = error_fields(exc.body)
        refusal = Refusal(exc.status, code, self._clean(message), retry_after_of(exc.headers), exc.request_id)
        return status_error(self.provider, self.key_env, refusal)

    def _send(self, method: str, path: str, **options: Any) -> httpx2.Response:
        url = path if path.startswith("http") else f"{self._base}/{path.lstrip('/')}"
        with self.governor.slot() as ticket:
            response = self._client.request(method, url, headers=self._headers, **options)
            if response.status_code == 429:
                self.governor.throttled(retry_after_of(dict(response.headers)))
            else:
                self.governor.observe(ticket, dict(response.headers))
        if response.status_code >= 400:
            raise HttpStatusError(response)
        return response

    def request(self, method: str, path: str, *, retry: bool = True, none_on: tuple[int, ...] = (),
                **options: Any) -> Any:
        """The JSON answer (None for an empty body, or for a status in `none_on`, e.g. 404 or 409). `retry=False`
        for creates that no idempotency key protects."""
        def once() -> Any:
            try:
                response = self._send(method, path, **options)
            except HttpStatusError as err:
                if err.status in none_on:
                    return None
                raise
            return response.json() if response.content.strip() else None
        if retry:
            return call_with_retries(once, classify=self.classify, max_attempts=self._max_attempts,
                                     what=f"{self.provider}: {method} {path.split('?')[0]}")
        try:
            return once()
        except Exception as exc:
            raise (self.classify(exc) or exc) from None

    def get_or_none(self, path: str, **options: Any) -> Any:
        """GET that answers None on 404 (an object that does not exist yet)."""
        return self.request("GET", path, none_on=(NOT_FOUND,), **options)

    def text(self, path: str) -> str:
        return str(call_with_retries(lambda: self._send("GET", path).text, classify=self.classify,
                                     max_attempts=self._max_attempts, what=f"{self.provider}: download {path}"))

    def close(self) -> None:
        self._client.close()


def pages(fetch: Callable[[str | None], tuple[list[Any], str | None]], limit: int = 50) -> list[Any]:
    """Every item of a paged list: `fetch(token)` returns (items, next token or None)."""
    items: list[Any] = []
    token: str | None = None
    for _ in range(limit):
        page, token = fetch(token)
        items += page
        if not token:
            break
    return items
