"""Live smoke tests: one small chat request per real provider. Skipped unless SLKIT_LIVE=1 and the provider's key
(and endpoint, where it has one) are set; they cost a fraction of a cent. Nothing else in the suite leaves 127.0.0.1.

    SLKIT_LIVE=1 OPENAI_API_KEY=... pytest -m live tests/test_providers_live.py
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from kit.config import ProviderConfig
from kit.providers import open_provider

pytestmark = pytest.mark.live

# provider kind -> (variables that must be set, config, model)
LIVE = {
    "openai": (("OPENAI_API_KEY",), {"kind": "openai"}, "gpt-4o-mini-2024-07-18"),
    "azure": (("AZURE_OPENAI_API_KEY", "AZURE_OPENAI_ENDPOINT", "AZURE_OPENAI_DEPLOYMENT"),
              {"kind": "azure", "base_url": "$AZURE_OPENAI_ENDPOINT"}, "$AZURE_OPENAI_DEPLOYMENT"),
    "together": (("TOGETHER_API_KEY",), {"kind": "together"}, "Qwen/Qwen2.5-7B-Instruct-Turbo"),
    "fireworks": (("FIREWORKS_API_KEY", "FIREWORKS_ACCOUNT_ID"),
                  {"kind": "fireworks", "account_id": "$FIREWORKS_ACCOUNT_ID"},
                  "accounts/fireworks/models/qwen2p5-7b-instruct"),
    "anthropic": (("ANTHROPIC_API_KEY",), {"kind": "anthropic"}, "claude-haiku-4-5"),
}


def _expand(value: str) -> str:
    return os.environ.get(value[1:], "") if value.startswith("$") else value


@pytest.mark.parametrize("kind", sorted(LIVE))
def test_one_chat_request(kind: str, tmp_path: Path) -> None:
    needed, raw, model = LIVE[kind]
    if os.environ.get("SLKIT_LIVE") != "1" or not all(os.environ.get(v) for v in needed):
        pytest.skip(f"live test: set SLKIT_LIVE=1 and {', '.join(needed)}")
    config = ProviderConfig.model_validate({k: _expand(v) for k, v in raw.items()})
    provider = open_provider(kind, config, env=dict(os.environ), data_root=tmp_path)
    try:
        result = provider.chat(_expand(model), [{"role": "user", "content": "Say OK."}], n=1, temperature=1.0,
                               max_tokens=5, seed=1)
    finally:
        provider.close()
    assert result.texts and result.texts[0].strip() and result.input_tokens > 0
