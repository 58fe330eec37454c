"""Imported once by the forkserver that route tests fork their runs from: the heavy imports and the tokenizer's
encoding load happen here once, not in every child run."""

import anthropic  # noqa: F401
import openai  # noqa: F401

import kit.batches  # noqa: F401
import kit.scorers.judge  # noqa: F401
import kit.providers.anthropic_dialect  # noqa: F401
import kit.providers.azure  # noqa: F401
import kit.providers.fireworks  # noqa: F401
import kit.providers.openai_dialect  # noqa: F401
import kit.providers.together  # noqa: F401
import routes_common  # noqa: F401
from kit.tokens import count_text

count_text("warm up the o200k_base encoding")
