"""The kit's one error vocabulary.

Every known failure is a `KitError` whose message says what to do next. The CLI prints the message on one line
and exits with `EXIT_USAGE`; anything that is not a `KitError` is a bug and keeps its traceback.
"""

from __future__ import annotations

EXIT_USAGE = 2


class KitError(Exception):
    """A failure the user can act on. `str(err)` is a single line that names the fix."""

    def __init__(self, message: str, *, request_id: str | None = None) -> None:
        super().__init__(message)
        self.request_id = request_id

    def one_line(self) -> str:
        text = " ".join(str(self).split())
        return f"{text} (request id {self.request_id})" if self.request_id else text


class ConfigError(KitError):
    """The experiment file is malformed, has unknown keys, wrong types or missing fields."""


class CatalogError(KitError):
    """A model is unknown, shut down, or cannot do what the config asks of it."""


class CredentialsError(KitError):
    """An API key environment variable is missing or empty."""


class LedgerError(KitError):
    """The run folder or its ledger cannot be opened, written, or is corrupt."""


class BudgetError(KitError):
    """A stage would take spend past the budget; nothing was started."""


class ProviderError(KitError):
    """A provider refused a request in a way retrying cannot fix (400/401/403/404, refusals, quota)."""


class TransientProviderError(ProviderError):
    """A provider failed in a way worth retrying (429, 5xx, timeouts, dropped connections)."""

    def __init__(self, message: str, *, retry_after: float | None = None, request_id: str | None = None) -> None:
        super().__init__(message, request_id=request_id)
        self.retry_after = retry_after


class JobFailedError(ProviderError):
    """A fine-tuning job ended in `failed` or `cancelled`."""


class DataError(KitError):
    """Generated, filtered or uploaded data is unusable (too few rows, bad format)."""
