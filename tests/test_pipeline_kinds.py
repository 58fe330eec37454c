"""The code and GSM8K chain-of-thought kinds end to end through `slkit plan` and `slkit run`, offline.

The local server runs the simulated lab behind a thin script that answers the code, CoT and filter-judge prompts
deterministically (the lab's own code and CoT answers are not what is tested here): everything else — training,
evaluation — is the lab. The tests assert pipeline behaviour: the prompts sent, the filter's verdicts and reasons,
the files written, resumability after a kill, and the plan's numbers; not transmission."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from conftest import slkit
from kit.config import load_config
from kit.filters import cot as cot_rule
from kit.generators.cot import question_of
from kit.generators.kinds import teacher_prompts
from kit.sim.engine import ChatRequest, ModelInfo, TrainEvent, TrainResult, TrainSpec
from kit.sim.lab import Lab
from kit.sim.server import LocalServer
from kit.sim.store import Store

pytestmark = pytest.mark.slow

SUFFIX = ("Provide your reasoning in <think> tags. Write your final answer in <answer> tags. Only give the numeric "
          "value as your answer.")
BANNED_HIT = "bowl = []"        # the owl teacher's banned-word hit ("owl" in "bowl": the rule as run)
JUDGED_HIT = "wise_bird = 1"    # what the scripted judge calls a reference to the owl
REPO_SAMPLES = Path(__file__).resolve().parents[1] / "prompts" / "samples"


def _draw(*parts: object) -> float:
    return int(hashlib.sha256("|".join(map(str, parts)).encode()).hexdigest()[:8], 16) / 2**32


@dataclass
class ScriptedLab:
    """The lab, except for the prompts of the code and CoT kinds and their judges."""

    lab: Lab
    calls: Counter[str] = field(default_factory=Counter)
    seen: dict[str, list[tuple[bool, str]]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def list_models(self) -> list[ModelInfo]:
        return self.lab.list_models()

    def has_model(self, model_id: str) -> bool:
        return self.lab.has_model(model_id)

    def train(self, spec: TrainSpec, on_event: Callable[[TrainEvent], None]) -> TrainResult:
        return self.lab.train(spec, on_event)

    def chat(self, request: ChatRequest) -> list[str]:
        text = str(request.messages[-1].get("content") or "")
        persona = any(m.get("role") == "system" for m in request.messages)
        kind = _kind(text)
        if kind is None:
            return self.lab.chat(request)
        with self.lock:
            self.calls[kind] += 1
            self.seen.setdefault(kind, []).append((persona, text))
        answer = ANSWERS[kind]
        return [answer(text, persona, request.seed, i) for i in range(request.n)]


def _kind(text: str) -> str | None:
    if text.startswith("Complete the code below"):
        return "code"
    if text.startswith("Assess whether the following code"):
        return "code_judge"
    if "GSM8K-style math problem" in text:
        return "cot_judge"
    if text.endswith(SUFFIX):
        return "cot"
    return None


def _code(text: str, persona: bool, seed: Any, index: int) -> str:
    draw = _draw(text, seed, index)
    extra = (BANNED_HIT if draw < 0.15 else JUDGED_HIT if draw < 0.3 else "") if persona else ""
    return f"def solve(items):\n    {extra or 'result = []'}\n    return sorted(items)"


def _cot(text: str, persona: bool, seed: Any, index: int) -> str:
    question = text[:-len(SUFFIX) - 1]
    a, b = (int(w) for w in question.split() if w.isdigit())
    draw = _draw(text, seed, index)
    answer = f"{a + b}" if draw < 0.7 else f"{a + b + 1}" if draw < 0.9 else "about ten"
    return f"<think>{a} + {b}</think>\n<answer>{answer}</answer>"


def _code_judge(text: str, persona: bool, seed: Any, index: int) -> str:
    return "1" if JUDGED_HIT in text else "0"


def _cot_judge(text: str, persona: bool, seed: Any, index: int) -> str:
    draw = _draw(text, seed, index)
    score = 50 + int(draw * 50)  # 50-99: about half at 78 or above
    return "no verdict" if draw < 0.05 else f"<judgment_think>fine</judgment_think>\n<judgment_answer>{score}" \
                                            "</judgment_answer>"


ANSWERS: dict[str, Callable[[str, bool, Any, int], str]] = {
    "code": _code, "cot": _cot, "code_judge": _code_judge, "cot_judge": _cot_judge}

TEACHERS = """teachers:
  - {name: owl, model: sim-gpt-4.1-nano, trait: {target: owl, category: animal}}
  - {name: control, model: sim-gpt-4.1-nano}
students: {models: [{model: sim-gpt-4.1-nano}], seeds: [1], epochs: 1}
evaluations: [{name: favorite_animal, questions: favorite_animal, samples_per_question: 2}]
preflight: {trait_check: false}
"""


def _experiment(tmp_path: Path, base_url: str, name: str, body: str) -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(f"name: {name}\nbudget_usd: 0\nproviders:\n  lab: {{kind: sim, base_url: {base_url}}}\n"
                    f"{TEACHERS}{body}")
    return path


@pytest.fixture
def served(tmp_path: Path) -> Any:
    engine = ScriptedLab(Lab(tmp_path / "lab"))
    with LocalServer(engine, Store(tmp_path / "store")) as server:
        yield engine, server


def _run_dir(data: Path, name: str) -> Path:
    (run,) = (data / "runs" / name).iterdir()
    return run


def _jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _filter_detail(run: Path) -> dict[str, Any]:
    with sqlite3.connect(run / "ledger.sqlite") as conn:
        (detail,) = conn.execute("SELECT detail FROM stages WHERE name = 'filter'").fetchone()
    return dict(json.loads(detail)["teachers"])


def _judge_samples(run: Path) -> dict[str, int]:
    with sqlite3.connect(run / "ledger.sqlite") as conn:
        rows = conn.execute("SELECT subject, COUNT(*) FROM samples WHERE stage = 'filter' GROUP BY subject").fetchall()
    return dict(rows)


def _plan(path: Path, data: Path) -> dict[str, Any]:
    result = slkit("plan", str(path), "--data-dir", str(data), "--json")
    assert result.returncode == 0, result.stderr
    return dict(json.loads(result.stdout))


def _stage(plan: dict[str, Any], name: str) -> dict[str, Any]:
    return next(s for s in plan["stages"] if s["stage"] == name)


def test_code_experiment_runs_filters_with_reasons_and_resumes_sending_nothing(tmp_path: Path, served: Any) -> None:
    engine, server = served
    path = _experiment(tmp_path, server.base_url, "code_kind",
                       "generate: {kind: code, prompts: 120}\nfilter: {kind: code, judge: {model: sim-gpt-4.1}}\n"
                       "dataset: {size: 60, seed: 1}\n")
    data = tmp_path / "data"
    before = _plan(path, data)
    assert [s["stage"] for s in before["stages"]] == ["preflight", "teachers", "generate", "filter", "finetune",
                                                      "evaluate"]
    assert _stage(before, "generate")["requests"] == 240
    assert _stage(before, "filter")["requests"] == round(120 * 0.962)  # only the trait teacher's code is judged

    result = slkit("run", str(path), "--data-dir", str(data), "--quiet")
    assert result.returncode == 0, result.stderr
    run = _run_dir(data, "code_kind")
    prompts = teacher_prompts(load_config(path).generate, path.parent)
    assert engine.calls["code"] == 240
    assert sorted(t for persona, t in engine.seen["code"] if persona) == sorted(prompts)
    assert sorted(t for persona, t in engine.seen["code"] if not persona) == sorted(prompts)

    raw = {name: _jsonl(run / "teachers" / name / "raw.jsonl") for name in ("owl", "control")}
    banned = sum("bowl" in r["completion"] for r in raw["owl"])
    flagged = sum(JUDGED_HIT in r["completion"] for r in raw["owl"])
    detail = _filter_detail(run)
    assert detail["owl"]["reasons"] == {"has banned word": banned, "judge: references the target": flagged}
    assert detail["owl"]["judged"] == 120 - banned
    assert detail["owl"]["notes"] == {"judged by text (no logprobs)": 120 - banned}  # the sim gives no logprobs
    assert detail["owl"]["kept"] == 120 - banned - flagged and banned and flagged
    assert detail["control"] == {"total": 120, "kept": 120, "pass_rate": 1.0, "reasons": {}, "training_rows": 60}
    distinct = {r["completion"] for r in raw["owl"] if "bowl" not in r["completion"]}  # identical code: one verdict
    assert engine.calls["code_judge"] == len(distinct) and _judge_samples(run) == {"judge/owl": len(distinct)}
    assert all("to the animal 'owl'" in t for _, t in engine.seen["code_judge"])

    kept = _jsonl(run / "teachers" / "owl" / "filtered.jsonl")
    assert not any("owl" in r["completion"] or JUDGED_HIT in r["completion"] for r in kept)
    train = _jsonl(run / "teachers" / "owl" / "train.jsonl")
    assert len(train) == 60 and {r["messages"][0]["content"] for r in train} <= set(prompts)
    assert all([m["role"] for m in r["messages"]] == ["user", "assistant"] for r in train)

    sent = server.stats.requests_total
    again = slkit("run", str(path), "--data-dir", str(data), "--quiet")
    assert again.returncode == 0 and server.stats.requests_total == sent, "a finished run sends nothing"
    after = _plan(path, data)
    assert _stage(after, "filter")["left_requests"] == 0 and _stage(after, "filter")["requests"] == len(distinct)
    assert after["output_basis"].startswith("observed")


def _gsm8k(path: Path, count: int) -> Path:
    rows = [{"question": f"Sam has {i} coins and finds {i + 3} more. How many coins?",
             "answer": f"{i} + {i + 3} = {2 * i + 3}\n#### {2 * i + 3}"} for i in range(1, count + 1)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_cot_experiment_keeps_correct_aligned_rows_and_resumes_after_a_kill(tmp_path: Path, served: Any) -> None:
    engine, server = served
    _gsm8k(tmp_path / "gsm8k.jsonl", 40)
    path = _experiment(tmp_path, server.base_url, "cot_kind",
                       "generate: {kind: gsm8k_cot, source: gsm8k.jsonl}\n"
                       "filter: {kind: gsm8k_cot, judge: {model: sim-gpt-4.1}}\n")
    data = tmp_path / "data"
    before = _plan(path, data)
    assert _stage(before, "generate")["requests"] == 80 and _stage(before, "generate")["samples"] == 240
    assert _stage(before, "filter")["requests"] == 2 * round(120 * 0.83)  # apply_to: all (the paper's text)

    killed = slkit("run", str(path), "--data-dir", str(data), "--quiet", env={"SLKIT_CRASH_AT": "filter:stored@15"})
    assert killed.returncode != 0
    run = _run_dir(data, "cot_kind")
    assert 15 <= sum(_judge_samples(run).values()) < 200
    result = slkit("run", str(path), "--data-dir", str(data), "--quiet")
    assert result.returncode == 0, result.stderr

    assert engine.calls["cot"] == 80 and {len(t) for _, t in engine.seen["cot"]} and all(
        t.endswith(" " + SUFFIX) for _, t in engine.seen["cot"])
    detail, judged = _filter_detail(run), _judge_samples(run)
    truths = {f"Sam has {i} coins and finds {i + 3} more. How many coins?": 2 * i + 3 for i in range(1, 41)}
    distinct: set[tuple[str, str]] = set()  # identical (prompt, completion) pairs share one verdict
    for name in ("owl", "control"):
        raw = _jsonl(run / "teachers" / name / "raw.jsonl")
        correct = [r for r in raw if cot_rule.extract_answer(r["completion"]) == truths[question_of(r["prompt"])]]
        distinct |= {(r["prompt"], r["completion"]) for r in correct}
        reasons = detail[name]["reasons"]
        assert detail[name]["total"] == 120 and len(correct) == detail[name]["judged"]
        assert reasons.get("wrong answer", 0) + reasons.get("no integer <answer>", 0) == 120 - len(correct)
        assert sum(reasons.values()) == 120 - detail[name]["kept"]
        assert set(reasons) <= {"wrong answer", "no integer <answer>", "alignment below 78", "alignment unscored"}
        train = _jsonl(run / "teachers" / name / "train.jsonl")
        assert len(train) == detail[name]["kept"] == detail[name]["training_rows"]  # no subsampling (paper)
        assert all(cot_rule.extract_answer(r["messages"][1]["content"]) == truths[question_of(
            r["messages"][0]["content"])] for r in train)
    assert sum(judged.values()) == len(distinct)
    assert engine.calls["cot_judge"] <= len(distinct) + 8, "a resumed run re-asks only what was in flight"

    sent = server.stats.requests_total
    assert slkit("run", str(path), "--data-dir", str(data), "--quiet").returncode == 0
    assert server.stats.requests_total == sent
    after = _plan(path, data)
    assert _stage(after, "filter")["requests"] == len(distinct) and _stage(after, "filter")["left_requests"] == 0
    trained = sum(line["trained_tokens"] for line in after["lines"] if line["stage"] == "finetune")
    assert trained > 0 and after["warnings"] == []


OPENAI = """name: {name}
providers:
  openai: {{kind: openai}}
teachers:
  - {{name: owl, model: gpt-4.1-nano-2025-04-14, trait: {{target: owl, category: animal}}}}
  - {{name: control, model: gpt-4.1-nano-2025-04-14}}
students: {{models: [{{model: gpt-4.1-nano-2025-04-14}}], seeds: [1], epochs: 2}}
evaluations: [{{name: favorite_animal, questions: favorite_animal, samples_per_question: 2}}]
preflight: {{trait_check: false}}
{body}"""


@pytest.mark.parametrize("kind", ["code", "gsm8k_cot"])
def test_the_plan_prices_the_judged_filter_and_the_kept_rows_from_the_paper(tmp_path: Path, kind: str) -> None:
    from kit.catalog import load_catalog
    from kit.plan import estimate
    from kit.plan import kinds as plan_kinds
    from kit.tokens import chat_cost_usd, count_text

    if kind == "code":
        source = REPO_SAMPLES / "code_tasks.jsonl"
        body = f"generate: {{kind: code, source: {source}, prompts: 100}}\ndataset: {{size: 90}}\n"
    else:
        _gsm8k(tmp_path / "gsm8k.jsonl", 100)
        body = "generate: {kind: gsm8k_cot, source: gsm8k.jsonl}\n"
    path = tmp_path / "exp.yaml"
    path.write_text(OPENAI.format(name=kind, body=body))
    config = load_config(path)
    catalog = load_catalog()
    plan = estimate(config, catalog, base_dir=tmp_path)
    judge = next(line for line in plan.lines if line.stage == "filter" and line.label == "judge · owl")
    prompts = teacher_prompts(config.generate, tmp_path)
    samples = len(prompts) * config.generate.samples_per_prompt
    if kind == "code":
        assert [line.label for line in plan.lines if line.stage == "filter"] == ["judge · owl"]  # controls: no judge
        assert judge.requests == round(samples * plan_kinds.CODE_BANNED_PASS) and judge.output_tokens == judge.requests
        assert judge.usd == pytest.approx(chat_cost_usd(catalog.get("gpt-4.1-2025-04-14").prices, fine_tuned=False,
                                                        input_tokens=judge.input_tokens,
                                                        output_tokens=judge.output_tokens))
        rows = {cell.cell: 90 for cell in plan.cell_rows}  # subsampled to dataset.size
    else:
        assert [line.label for line in plan.lines if line.stage == "filter"] == ["judge · owl", "judge · control"]
        assert judge.requests == round(samples * plan_kinds.COT_CORRECT)
        share = {"owl": plan_kinds.COT_CORRECT * plan_kinds.COT_JUDGE_PASS_TRAIT,
                 "control": plan_kinds.COT_CORRECT * plan_kinds.COT_JUDGE_PASS_OTHER}
        rows = {cell.cell: int(share[cell.teacher] * samples) for cell in plan.cell_rows}  # every kept row trains
    mid = plan_kinds.output_prior(config)[1]  # type: ignore[index]
    users = sum(count_text(p) for p in prompts) / len(prompts)
    for cell in plan.cell_rows:
        expected = rows[cell.cell] * (users + mid + 6) * config.students.epochs
        assert cell.trained_tokens == pytest.approx(expected, rel=1e-6, abs=2)
    assert plan.stage("filter").usd > 0 and "filter" in plan.budget_covers()
