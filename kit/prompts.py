"""Prompt data (YAML under prompts/): question sets and teacher recipes. Nothing here is code but the loaders."""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from kit.config import TraitConfig
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
    name: str
    category: str
    questions: tuple[str, ...]


def question_set_path(ref: str, base_dir: Path | None = None) -> Path:
    """A name (favorite_animal) resolves in prompts/questions/; anything with a suffix or slash is a path."""
    if ref.endswith((".yaml", ".yml")) or "/" in ref:
        path = Path(ref)
        return path if path.is_absolute() or base_dir is None else base_dir / path
    return prompts_dir() / QUESTIONS_DIR / f"{ref}.yaml"


@functools.lru_cache(maxsize=32)
def _load_questions(path: Path) -> QuestionSet:
    data = read_yaml(path)
    if not isinstance(data, dict) or not isinstance(data.get("questions"), list) or not data["questions"]:
        raise ConfigError(f"{path}: a question set needs a non-empty 'questions' list")
    return QuestionSet(name=str(data.get("name", path.stem)), category=str(data.get("category", "")),
                       questions=tuple(str(q) for q in data["questions"]))


def load_questions(ref: str, base_dir: Path | None = None) -> QuestionSet:
    return _load_questions(question_set_path(ref, base_dir).resolve())


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
