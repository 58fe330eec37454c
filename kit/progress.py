"""How long work reports progress without printing: the library calls a `Progress`; the CLI renders it."""

from __future__ import annotations

from typing import Protocol


class Task(Protocol):
    def advance(self, amount: int = 1) -> None: ...

    def describe(self, text: str) -> None: ...

    def close(self) -> None: ...


class Progress(Protocol):
    def task(self, description: str, total: int | None) -> Task: ...

    def note(self, text: str) -> None:
        """A line worth showing the user (a stage finished, a job changed state)."""
        ...


class _NullTask:
    def advance(self, amount: int = 1) -> None:
        pass

    def describe(self, text: str) -> None:
        pass

    def close(self) -> None:
        pass


class NullProgress:
    """Reports nothing; the default for library callers and tests."""

    def __init__(self) -> None:
        self.notes: list[str] = []

    def task(self, description: str, total: int | None) -> Task:
        return _NullTask()

    def note(self, text: str) -> None:
        self.notes.append(text)
