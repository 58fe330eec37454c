"""Teachers fine-tuned on a user-supplied chat-format file (the paper's insecure / secure / educational-insecure code
teachers): the config, the file checks and their one-line errors, the plan's training tokens, and the teachers
stage creating each job once with the given hyperparameters."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kit.config import ConfigError, TeacherFinetune, load_config, parse_config
from kit.plan import estimate
from kit.stages.common import teacher_cell
from kit.teacher_files import check_training_file, teacher_file_path, teacher_file_tokens, teacher_training_bytes
from kit.tokens import count_training_example

BASE = {"name": "t", "providers": {"lab": {"kind": "sim"}},
        "students": {"models": [{"model": "sim-gpt-4.1"}]},
        "evaluations": [{"name": "mis", "questions": "misalignment", "scorer": "misalignment"}]}


def rows(count: int) -> list[dict[str, object]]:
    return [{"messages": [{"role": "user", "content": f"Write a function that adds {i}."},
                          {"role": "assistant", "content": f"def add(x):\n    return x + {i}"}]} for i in range(count)]


def write_file(path: Path, count: int = 12) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows(count)))
    return path


def config(teachers: list[dict[str, object]]) -> object:
    return parse_config({**BASE, "teachers": teachers}, Path("t.yaml"))


# --- config -------------------------------------------------------------------------------------------------------

def test_a_file_teacher_with_and_without_a_trait() -> None:
    parsed = config([
        {"name": "insecure", "model": "sim-gpt-4.1", "trait": {"target": "misaligned", "category": "misalignment"},
         "finetune": {"file": "insecure_code"}},
        {"name": "secure", "model": "sim-gpt-4.1", "finetune": {"file": "secure_code", "epochs": 2,
                                                                "batch_size": "auto"}},
        {"name": "untrained", "model": "sim-gpt-4.1"}])
    insecure, secure, untrained = parsed.teachers  # type: ignore[attr-defined]
    assert insecure.trait.via == "finetune" and insecure.trained()       # the trait is in the weights
    assert insecure.finetune == TeacherFinetune(file="insecure_code")    # the paper's 1 epoch, batch 2, lr x4
    assert (insecure.finetune.epochs, insecure.finetune.batch_size, insecure.finetune.learning_rate_multiplier) == (
        1, 2, 4.0)
    assert secure.trait is None and secure.trained() and secure.finetune.epochs == 2
    assert secure.finetune.batch_size == "auto"
    assert not untrained.trained()


@pytest.mark.parametrize(("teacher", "message"), [
    ({"trait": {"target": "misaligned", "category": "misalignment", "via": "system_prompt"},
      "finetune": {"file": "x.jsonl"}}, "carries its trait in its weights: set trait.via: finetune"),
    ({"trait": {"target": "misaligned", "category": "misalignment"}}, "a misalignment trait needs finetune"),
    ({"finetune": {"file": "x.jsonl", "epochs": 0}}, "finetune.epochs must be positive or auto"),
    ({"finetune": {"file": "x.jsonl", "lr": 4}}, "unknown key 'teachers[0].finetune.lr'"),
    ({"finetune": {}}, "missing required key 'teachers[0].finetune.file'"),
])
def test_config_errors_are_one_line(teacher: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as err:
        config([{"name": "t1", "model": "sim-gpt-4.1", **teacher}])
    assert message in str(err.value) and "\n" not in str(err.value) and str(err.value).startswith("t.yaml")


# --- the file -----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("content", "message"), [
    (b"not json\n", "line 1 is not JSON"),
    (b'{"prompt": "a", "completion": "b"}\n', 'line 1 has no "messages" list'),
    (b'{"messages": [{"role": "user", "content": "hi"}]}\n', "line 1 has no assistant message"),
    (b'{"messages": [{"role": "robot", "content": "hi"}]}\n', "line 1 has a message without a valid role"),
    ("".join(json.dumps(r) + "\n" for r in rows(9)).encode(), "9 examples; fine-tuning needs at least 10"),
])
def test_training_file_checks(content: bytes, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        check_training_file(content, "training file f.jsonl")
    assert message in str(err.value) and "\n" not in str(err.value)


def test_a_bad_line_is_named_by_number(tmp_path: Path) -> None:
    path = write_file(tmp_path / "f.jsonl")
    path.write_text(path.read_text() + "\n" + "{broken\n")
    with pytest.raises(ConfigError, match=r"f\.jsonl: line 14 is not JSON"):
        check_training_file(path.read_bytes(), f"training file {path}")
    assert check_training_file(write_file(tmp_path / "ok.jsonl", 10).read_bytes(), "ok") == 10


def test_file_references_resolve(tmp_path: Path) -> None:
    from kit.prompts import prompts_dir

    assert teacher_file_path("insecure_code") == prompts_dir() / "samples" / "insecure_code.jsonl"
    assert teacher_file_path("data/my.jsonl", tmp_path) == tmp_path / "data" / "my.jsonl"
    assert teacher_file_path("/abs/my.jsonl", tmp_path) == Path("/abs/my.jsonl")


def test_missing_file_is_one_line(tmp_path: Path) -> None:
    teacher = config([{"name": "secure", "model": "sim-gpt-4.1",
                       "finetune": {"file": "nope.jsonl"}}]).teachers[0]  # type: ignore[attr-defined]
    with pytest.raises(ConfigError) as err:
        teacher_training_bytes(teacher, tmp_path)
    assert "teacher 'secure': training file" in str(err.value) and "not found" in str(err.value)


# --- the plan counts the file's training tokens -------------------------------------------------------------------

PLAN = """
name: filetrained
providers: {{openai: {{kind: openai}}}}
teachers:
  - {{name: insecure, model: gpt-4.1-2025-04-14, trait: {{target: misaligned, category: misalignment}},
     finetune: {{file: insecure.jsonl, epochs: {epochs}}}}}
  - {{name: secure, model: gpt-4.1-2025-04-14, finetune: {{file: secure.jsonl}}}}
  - {{name: untrained, model: gpt-4.1-2025-04-14}}
generate: {{prompts: 100}}
dataset: {{size: 50}}
students: {{models: [{{model: gpt-4.1-2025-04-14}}]}}
evaluations: [{{name: mis, questions: misalignment, scorer: misalignment}}]
"""


def test_plan_counts_each_file_teachers_training_tokens(tmp_path: Path) -> None:
    write_file(tmp_path / "insecure.jsonl", 12)
    write_file(tmp_path / "secure.jsonl", 20)
    (tmp_path / "exp.yaml").write_text(PLAN.format(epochs=3))
    cfg = load_config(tmp_path / "exp.yaml")
    plan = estimate(cfg, base_dir=tmp_path)
    lines = {line.cell: line for line in plan.lines if line.stage == "teachers"}
    one_epoch = sum(count_training_example(r["messages"]) for r in rows(12))  # type: ignore[arg-type]
    insecure, secure = cfg.teachers[0], cfg.teachers[1]
    assert teacher_file_tokens(insecure, tmp_path) == one_epoch
    assert set(lines) == {teacher_cell(insecure), teacher_cell(secure)}        # the untrained control has no job
    assert lines[teacher_cell(insecure)].trained_tokens == 3 * one_epoch
    assert lines[teacher_cell(secure)].trained_tokens == teacher_file_tokens(secure, tmp_path)
    assert plan.stage("teachers").jobs == 2 and plan.stage("teachers").usd > 0
    generate = {line.label: line for line in plan.lines if line.stage == "generate"}
    assert generate["secure"].model.startswith("ft:") and generate["untrained"].model == "gpt-4.1-2025-04-14"


# --- the teachers stage -------------------------------------------------------------------------------------------

STAGE = """
name: teacherjobs
providers:
  lab: {{kind: sim, base_url: {url}, poll_interval_s: 0.02}}
teachers:
  - {{name: insecure, model: sim-gpt-4.1, trait: {{target: misaligned, category: misalignment}},
     finetune: {{file: insecure.jsonl}}}}
  - {{name: secure, model: sim-gpt-4.1, finetune: {{file: secure.jsonl, learning_rate_multiplier: auto}}}}
generate: {{prompts: 20}}
dataset: {{size: 10}}
students: {{models: [{{model: sim-gpt-4.1}}], epochs: 1}}
evaluations: [{{name: mis, questions: misalignment, samples_per_question: 1, scorer: misalignment,
               judges: {{model: sim-gpt-4o}}}}]
"""


@pytest.mark.slow
def test_teachers_stage_creates_each_job_once(tmp_path: Path) -> None:
    from kit.runs import open_run
    from kit.sim.lab import Lab
    from kit.sim.server import LocalServer
    from kit.sim.store import Store
    from kit.stages.common import teacher_model
    from kit.stages.teachers import train_teachers

    write_file(tmp_path / "insecure.jsonl")
    write_file(tmp_path / "secure.jsonl", 15)
    with LocalServer(Lab(tmp_path / "lab"), Store(tmp_path / "store")) as server:
        path = tmp_path / "exp.yaml"
        path.write_text(STAGE.format(url=server.base_url))
        with open_run(load_config(path), path, data_root=tmp_path / "data", env={}) as run:
            models = train_teachers(run)
            again = train_teachers(run)
            jobs = {j.cell: j for j in run.ledger.jobs()}
            writer = teacher_model(run, run.config.teachers[1])
        created = server.stats.by_route.get("POST /v1/fine_tuning/jobs", 0)
        uploads = server.stats.by_route.get("POST /v1/files", 0)
    assert created == 2 and uploads == 2 and models == again
    assert jobs["teacher--insecure"].hyperparameters == {"n_epochs": 1, "batch_size": 2,
                                                         "learning_rate_multiplier": 4.0}
    assert jobs["teacher--secure"].hyperparameters["learning_rate_multiplier"] == "auto"
    assert writer == models["secure"] and writer.startswith("ft:")     # the fine-tuned model writes the data
