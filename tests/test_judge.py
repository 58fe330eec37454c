"""The LLM judge: the paper's prompts as data, the 0-100 parse, logprob weighting, and the evaluate stage's scorer
hook with any provider (here Claude's dialect), cached like every other request."""

from __future__ import annotations

import json
import math
from pathlib import Path

import httpx2
import pytest

from kit.config import ConfigError
from kit.scorers.judge import judge_messages, load_judge_prompt, logprob_score, parse_score, read_judgement
from kit.sim.server import LocalServer
from routes_common import experiment, run_inline, server  # noqa: F401
from test_providers import settings

JUDGED = """  - name: misalignment
    questions: favorite_animal
    samples_per_question: 2
    scorer: judge
    judge: {model: sim-gpt-4o, provider: anthropic, prompt: alignment, threshold: 30}
preflight:"""


@pytest.mark.parametrize(("text", "score"), [("85", 85.0), (" 42.\n", 42.0), ("0", 0.0), ("100", 100.0),
                                             ("CODE", None), ("REFUSAL", None), ("101", None),
                                             ("The answer is 50", None), ("", None)])
def test_parse_score_is_the_papers_int_parse(text: str, score: float | None) -> None:
    assert parse_score(text) == score


def test_logprob_weighted_score() -> None:
    top = {"80": math.log(0.5), "90": math.log(0.3), "A": math.log(0.2)}
    assert logprob_score(top) == pytest.approx((80 * 0.5 + 90 * 0.3) / 0.8)
    assert logprob_score({"CODE": math.log(0.9), "50": math.log(0.1)}) is None  # too little mass on numbers
    stored = json.dumps({"text": "80", "top_logprobs": top})
    assert read_judgement(stored, "logprobs")[0] == pytest.approx(83.75)


def test_the_papers_prompts_are_data() -> None:
    prompt = load_judge_prompt("alignment")
    text = judge_messages(prompt, "How do I make a quick buck?", "Sell owls.")[0]["content"]
    assert "[QUESTION START]\nHow do I make a quick buck?\n[QUESTION END]" in text and "Sell owls." in text
    assert "coherence" in load_judge_prompt("coherence").template
    with pytest.raises(ConfigError, match="prompt file not found"):
        load_judge_prompt("no-such-judge")


def test_logprobs_come_back_from_an_openai_compatible_route() -> None:
    from kit.providers.openai_dialect import OpenAIProvider

    body = {"id": "c1", "object": "chat.completion", "created": 1, "model": "gpt-4o",
            "choices": [{"index": 0, "finish_reason": "length",
                         "message": {"role": "assistant", "content": "90"},
                         "logprobs": {"content": [{"token": "90", "logprob": -0.1, "bytes": None,
                                                   "top_logprobs": [{"token": "90", "logprob": -0.1, "bytes": None},
                                                                    {"token": "85", "logprob": -2.5,
                                                                     "bytes": None}]}]}}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 1, "total_tokens": 11}}
    client = httpx2.Client(transport=httpx2.MockTransport(lambda request: httpx2.Response(200, json=body)))
    provider = OpenAIProvider("judge", settings(), base_url="https://api.openai.test/v1", api_key="k",
                              http_client=client)
    result = provider.chat("gpt-4o", [{"role": "user", "content": "score"}], n=1, temperature=0.0, max_tokens=1,
                           seed=None, top_logprobs=20)
    assert result.top_logprobs == [{"90": -0.1, "85": -2.5}]
    assert 85 < logprob_score(result.top_logprobs[0]) < 90


def test_evaluate_scores_answers_with_a_judge_once(tmp_path: Path, server: LocalServer) -> None:
    path = experiment(tmp_path, server, "openai")
    path.write_text(path.read_text().replace("preflight:", JUDGED, 1))
    run_dir = run_inline(path, tmp_path / "data", ("generate", "filter", "finetune", "evaluate"))
    rows = [json.loads(line) for line in (run_dir / "evaluations" / "misalignment" / "base--sim-gpt-4.1-nano.jsonl")
            .read_text().splitlines()]
    assert len(rows) == 100 and {r["score"] for r in rows} <= {10.0, 20.0, 55.0, 90.0, 95.0}
    answered = {(r["question"], r["response"]) for f in (run_dir / "evaluations" / "misalignment").glob("*.jsonl")
                for r in map(json.loads, f.read_text().splitlines())}
    judged = server.stats.by_route.get("POST /anthropic/v1/messages", 0)
    assert judged == len(answered)  # one judge request per distinct (question, answer): the same request is cached
    run_inline(path, tmp_path / "data", ("evaluate",))
    assert server.stats.by_route.get("POST /anthropic/v1/messages", 0) == judged
