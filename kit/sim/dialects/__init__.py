"""Provider dialects of the local server besides OpenAI's own: Azure OpenAI (data plane under `/openai`, deployments
under `/subscriptions/...`), Together (`/together/v1`), Fireworks (`/fireworks/v1/accounts/...` and
`/fireworks/inference/v1`) and Anthropic (`/anthropic/v1/messages`). Each is a thin translation onto the same store,
jobs and engine, so a job created in one dialect trains in the same simulated lab.
"""

from __future__ import annotations

from starlette.routing import BaseRoute

DIALECT_PREFIXES = ("/openai/", "/subscriptions/", "/together/", "/fireworks/", "/anthropic/")


def dialect_routes() -> list[BaseRoute]:
    from kit.sim.dialects import anthropic, azure, fireworks, together

    return [*azure.routes(), *together.routes(), *fireworks.routes(), *anthropic.routes()]
