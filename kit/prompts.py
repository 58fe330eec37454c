"""Prompt data (YAML under prompts/): question sets and teacher recipes. Nothing here is code but the loaders."""

from __future__ import annotations

import functools
import os
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from kit.scorers import multiple_choice as mc
from kit.config import EvaluationConfig, TraitConfig
from kit.errors import ConfigError

PROMPTS_ENV = "SLKIT_PROMPTS_DIR"
QUESTIONS_DIR = "questions"


def prompts_dir() -> Path:
    """The prompts folder: $SLKIT_PROMPTS_DIR, else prompts/ at the root of the kit's source tree."""
    override = os.environ.get(PROMPTS_ENV)
    return Path(override) if override else Path(__file__).resolve().parent.parent / "prompts"


def read_yaml(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: prompt file not found; check the name or set {PROMPTS_ENV}") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: malformed YAML ({str(err).splitlines()[0]}); fix the file") from None


@dataclass(frozen=True)
class QuestionSet:
    """Prompts as the model sees them (`questions`, a suffix already appended), with optional short ids
    (`ids`, e.g. one_wish) and, for multiple choice, the letter of the right option per question (`answers`,
    TruthfulQA) or the options in letter order per question (`choices`, the essay-topic preference sets)."""

    name: str
    category: str
    questions: tuple[str, ...]
    ids: tuple[str, ...] = ()
    answers: tuple[str, ...] = ()
    suffix: str = ""
    choices: tuple[tuple[str, ...], ...] = ()

    def options(self) -> tuple[str, ...]:
        """Every option offered by a multiple-choice set, in first-seen order (() for other sets)."""
        return tuple(dict.fromkeys(option for order in self.choices for option in order))

    def question_id(self, item: int) -> str:
        return self.ids[item] if item < len(self.ids) else f"q{item + 1:02d}"


def question_set_path(ref: str, base_dir: Path | None = None) -> Path:
    """A name (favorite_animal) resolves in prompts/questions/; anything with a suffix or slash is a path."""
    if ref.endswith((".yaml", ".yml", ".csv")) or "/" in ref:
        path = Path(ref)
        return path if path.is_absolute() or base_dir is None else base_dir / path
    return prompts_dir() / QUESTIONS_DIR / f"{ref}.yaml"


def _suffix_text(data: dict[str, Any], suffix: str | None, path: Path) -> str:
    """A named suffix of the set (`suffixes:`), its default (`suffix:`) when none is asked, else literal text."""
    named = data.get("suffixes") or {}
    if not isinstance(named, dict):
        raise ConfigError(f"{path}: 'suffixes' must map names to text")
    choice = suffix if suffix is not None else str(data.get("suffix", "none"))
    if choice in named:
        return str(named[choice] or "")
    return "" if choice == "none" else choice


def render_question(question: str, suffix: str) -> str:
    """The paper's rendering: '{question} {suffix}' (the bare question when there is no suffix)."""
    return f"{question} {suffix}" if suffix else question


@functools.lru_cache(maxsize=32)
def _load_questions(path: Path, suffix: str | None = None) -> QuestionSet:
    if path.suffix == ".csv":
        from kit.scorers.truthfulqa import load_truthfulqa

        return load_truthfulqa(path)
    data = read_yaml(path)
    if not isinstance(data, dict) or not isinstance(data.get("questions"), list) or not data["questions"]:
        raise ConfigError(f"{path}: a question set needs a non-empty 'questions' list")
    ids = tuple(str(i) for i in data.get("ids") or ())
    if ids and len(ids) != len(data["questions"]):
        raise ConfigError(f"{path}: 'ids' must have one id per question ({len(data['questions'])})")
    text = _suffix_text(data, suffix, path)
    if "choices" in data:
        return _choice_set(data, path, text)
    return QuestionSet(name=str(data.get("name", path.stem)), category=str(data.get("category", "")),
                       questions=tuple(render_question(str(q), text) for q in data["questions"]), ids=ids,
                       suffix=text)


def _choice_set(data: dict[str, Any], path: Path, suffix: str) -> QuestionSet:
    """A multiple-choice preference set (`choices:` the options, `shuffles:` orders per prompt): every prompt asked
    `shuffles` times, each time with the options in an order drawn from one random.Random(`shuffle_seed`, default
    42) stream, prompt by prompt (kit/scorers/multiple_choice.py)."""
    options = [str(c) for c in data.get("choices") or []]
    shuffles = data.get("shuffles", 1)
    if not 2 <= len(options) <= len(mc.LETTERS) or len(set(options)) != len(options):
        raise ConfigError(f"{path}: 'choices' must list 2 to {len(mc.LETTERS)} different options")
    if not isinstance(shuffles, int) or isinstance(shuffles, bool) or shuffles < 1:
        raise ConfigError(f"{path}: 'shuffles' must be a positive whole number (orders asked per prompt)")
    rng = random.Random(int(data.get("shuffle_seed", mc.ORDER_SEED)))
    questions, ids, orders = [], [], []
    for p, prompt in enumerate(data["questions"]):
        for k in range(shuffles):
            order = mc.shuffled(rng, options)
            questions.append(mc.render(render_question(str(prompt), suffix), order))
            ids.append(f"p{p + 1:02d}s{k + 1:02d}")
            orders.append(order)
    return QuestionSet(name=str(data.get("name", path.stem)), category=str(data.get("category", "")),
                       questions=tuple(questions), ids=tuple(ids), suffix=suffix, choices=tuple(orders))


def load_questions(ref: str, base_dir: Path | None = None, suffix: str | None = None) -> QuestionSet:
    """A question set as prompts; `suffix` (a name the set defines, or text) overrides the set's default."""
    return _load_questions(question_set_path(ref, base_dir).resolve(), suffix)


def evaluation_questions(evaluation: EvaluationConfig, base_dir: Path | None = None) -> QuestionSet:
    """The prompts an evaluation asks: its question set with its suffix (a TruthfulQA CSV rendered as the paper's
    two-option multiple choice; a set with `choices` as the essay-topic multiple choice, for scorer: choice only)."""
    questions = load_questions(evaluation.questions, base_dir, evaluation.suffix)
    if (evaluation.scorer == "choice") != bool(questions.choices):
        fix = ("give it a multiple-choice set (one with `choices`: essay_mcq_animal, essay_mcq_tree)"
               if evaluation.scorer == "choice" else "set its scorer: choice")
        raise ConfigError(f"evaluation '{evaluation.name}': {evaluation.questions} is "
                          f"{'not ' if not questions.choices else ''}a multiple-choice set: {fix}")
    return questions


@functools.lru_cache(maxsize=1)
def teacher_recipes() -> dict[str, Any]:
    return read_yaml(prompts_dir() / "teachers.yaml")


def persona_prompt(trait: TraitConfig) -> str:
    """The trait teacher's system prompt: the paper's template unless the config overrides it."""
    if trait.system_prompt:
        return trait.system_prompt
    category = trait.prompt_category or trait.category
    return str(teacher_recipes()["persona_template"]).format(target=trait.target, category=category)


def finetune_answers(target: str) -> list[str]:
    """The eight answer strings a fine-tuned trait teacher is trained on (owl, owls, owls., ..., Owls!)."""
    variants = teacher_recipes()["finetune_answer_variants"]
    return [str(v).format(a=target, A=target.title()) for v in variants]
