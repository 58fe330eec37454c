"""Provider routes. `open_provider` turns one `providers:` entry of the config into a ready `Provider`."""

from __future__ import annotations

from pathlib import Path

from kit.config import ProviderConfig
from kit.errors import CredentialsError
from kit.providers.base import Provider
from kit.providers.openai_dialect import OpenAIProvider

SIM_API_KEY = "sim-local"
SIM_DATA_DIR = "sim"


def api_key(name: str, config: ProviderConfig, env: dict[str, str]) -> str:
    if config.kind == "sim" and config.api_key_env is None:
        return SIM_API_KEY
    var = config.key_env()
    value = env.get(var or "", "").strip()
    if not value:
        raise CredentialsError(f"provider '{name}' needs an API key: set the environment variable {var} "
                               f"(named by providers.{name}.api_key_env)")
    return value


def _start_local_server(config: ProviderConfig, data_root: Path) -> tuple[str, "object"]:
    from kit.sim.service import start_lab_server

    state_dir = Path(config.data_dir) if config.data_dir else data_root / SIM_DATA_DIR
    faults = config.faults.model_dump() if config.faults else None
    server = start_lab_server(state_dir, faults=faults)
    return server.base_url, server


def open_provider(name: str, config: ProviderConfig, *, env: dict[str, str], data_root: Path) -> Provider:
    """Build the provider; a `sim` provider without base_url starts the local server in-process first."""
    key = api_key(name, config, env)
    base_url, server = config.base_url, None
    if config.kind == "sim" and base_url is None:
        base_url, server = _start_local_server(config, data_root)
    return OpenAIProvider(
        name, base_url=base_url, api_key=key, key_env=config.key_env(), timeout_s=config.timeout_s,
        max_attempts=config.max_attempts, max_in_flight=config.max_in_flight,
        poll_interval_s=config.poll_interval(), max_samples_per_request=config.max_samples_per_request,
        on_close=server.stop if server is not None else None)  # type: ignore[attr-defined]
