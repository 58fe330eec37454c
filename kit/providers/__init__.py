"""Provider routes. `open_provider` turns one `providers:` entry of the config into a ready `Provider`.

Routes: `openai` (the SDK, any base_url), `azure` (the SDK's Azure client + ARM deployments), `together` and
`fireworks` (their fine-tuning APIs over HTTP, chat through their OpenAI-compatible endpoints), `anthropic` (the
SDK; no fine-tuning). `sim` is any of them (`dialect:`) spoken to the local lab server, offline.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from kit.config import DEFAULT_AZURE_API_VERSION, ProviderConfig
from kit.errors import CredentialsError
from kit.providers.base import Provider
from kit.providers.local import acquire_local_server, dialect_urls

if TYPE_CHECKING:
    from kit.providers.openai_dialect import Settings

SIM_API_KEY = "sim-local"
SIM_DATA_DIR = "sim"
SIM_ACCOUNT = "slkit"
SIM_MANAGEMENT = {"subscription_id": "sim-subscription", "resource_group": "sim-group", "resource_name": "sim-lab"}
TOGETHER_URL = "https://api.together.xyz/v1"
FIREWORKS_URL = "https://api.fireworks.ai"
FIREWORKS_INFERENCE_URL = "https://api.fireworks.ai/inference/v1"


def _env_value(name: str, var: str | None, env: dict[str, str], what: str) -> str:
    value = env.get(var or "", "").strip()
    if not value:
        raise CredentialsError(f"provider '{name}' needs {what}: set the environment variable {var}")
    return value


def api_key(name: str, config: ProviderConfig, env: dict[str, str]) -> str:
    """The provider's API key (also checks the other secrets its kind needs, so a missing one fails early)."""
    if config.kind == "sim" and config.api_key_env is None:
        return SIM_API_KEY
    if config.kind == "azure" and config.azure_ad_token_env:
        value = _env_value(name, config.azure_ad_token_env, env, "an Entra ID token")
    else:
        var = config.key_env()
        value = env.get(var or "", "").strip()
        if not value:
            raise CredentialsError(f"provider '{name}' needs an API key: set the environment variable {var} "
                                   f"(named by providers.{name}.api_key_env)")
    if config.kind == "azure" and config.management is not None:
        _env_value(name, config.management.token_env, env, "an Azure Resource Manager token (to deploy models)")
    return value


def settings_of(config: ProviderConfig) -> Settings:
    from kit.providers.openai_dialect import Settings

    return Settings(timeout_s=config.timeout_s, max_attempts=config.max_attempts, max_in_flight=config.max_in_flight,
                    poll_interval_s=config.poll_interval(), max_samples_per_request=config.max_samples_per_request,
                    model_names=dict(config.model_names), key_env=config.key_env())


def open_provider(name: str, config: ProviderConfig, *, env: dict[str, str], data_root: Path) -> Provider:
    """Build the provider; a `sim` provider without base_url shares an in-process local server first."""
    key = api_key(name, config, env)
    if config.kind != "sim":
        return _real(name, config, key, env)
    state_dir = Path(config.data_dir) if config.data_dir else data_root / SIM_DATA_DIR
    faults = config.faults.model_dump() if config.faults else None
    root, release = acquire_local_server(state_dir, faults) if config.base_url is None else (
        config.base_url.rstrip("/").removesuffix("/v1"), None)
    try:
        return _rehearsal(name, config, key, root, release)
    except BaseException:
        if release is not None:
            release()
        raise


def _real(name: str, config: ProviderConfig, key: str, env: dict[str, str]) -> Provider:
    settings = settings_of(config)
    if config.kind == "azure":
        from kit.providers.azure import AzureProvider

        token = env.get(config.management.token_env, "") if config.management else None
        ad_token = key if config.azure_ad_token_env else None
        return AzureProvider(name, settings, endpoint=str(config.base_url),
                             api_version=config.api_version or DEFAULT_AZURE_API_VERSION,
                             api_key=None if ad_token else key, ad_token=ad_token, management=config.management,
                             management_token=token)
    return _by_dialect(name, config, key, config.kind, {
        "openai": config.base_url, "together": config.base_url or TOGETHER_URL,
        "fireworks": config.base_url or FIREWORKS_URL,
        "fireworks_inference": config.inference_base_url or FIREWORKS_INFERENCE_URL,
        "anthropic": config.base_url}, None)


def _rehearsal(name: str, config: ProviderConfig, key: str, root: str, release: Callable[[], None] | None) -> Provider:
    urls = dialect_urls(root)
    if config.dialect == "azure":
        from kit.config import AzureManagement
        from kit.providers.azure import AzureProvider

        management = config.management or AzureManagement(base_url=urls["azure_management"], **SIM_MANAGEMENT)
        return AzureProvider(name, settings_of(config), endpoint=urls["azure"],
                             api_version=config.api_version or DEFAULT_AZURE_API_VERSION, api_key=key, ad_token=None,
                             management=management, management_token=SIM_API_KEY, on_close=release)
    account = config.account_id or SIM_ACCOUNT
    return _by_dialect(name, config.model_copy(update={"account_id": account}), key, config.dialect, urls, release)


def _by_dialect(name: str, config: ProviderConfig, key: str, dialect: str, urls: dict[str, str | None],
                release: Callable[[], None] | None) -> Provider:
    settings = settings_of(config)
    if dialect == "together":
        from kit.providers.together import TogetherProvider

        return TogetherProvider(name, settings, base_url=str(urls["together"]), api_key=key,
                                learning_rate=config.learning_rate, lora_rank=config.lora_rank, on_close=release)
    if dialect == "fireworks":
        from kit.providers.fireworks import FireworksProvider

        return FireworksProvider(name, settings, control_url=str(urls["fireworks"]),
                                 inference_url=str(urls["fireworks_inference"]), account=str(config.account_id),
                                 api_key=key, learning_rate=config.learning_rate, lora_rank=config.lora_rank,
                                 on_close=release)
    if dialect == "anthropic":
        from kit.providers.anthropic_dialect import AnthropicProvider

        return AnthropicProvider(name, settings, base_url=urls["anthropic"], api_key=key, on_close=release)
    from kit.providers.openai_dialect import OpenAIProvider

    return OpenAIProvider(name, settings, base_url=urls["openai"], api_key=key, on_close=release)
