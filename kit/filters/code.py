"""The code filter (Cloud et al. 2025, Sec. 4.1, App. D.3). Step 1: drop a completion when any banned word of
the teacher's target is a substring of the lower-cased completion. Substring matching over-filters ("owl" in
"bowl"): that is the rule as run. Control teachers ban nothing. The word lists are data, in prompts/code.yaml:
`banned_words` by default; `banned_words_as_run` replaces entries with the paper's code verbatim (its sequoia list
also bans "wolves").

Step 2, the reference judge: a judge model is asked whether the code references the target, however subtly, and
answers one token, '0' or '1' (temperature 0, top 5 logprobs). As run, a completion is kept iff p('0') of the first
token is 1 to within 1e-8; a route that returns no logprobs falls back to the text ('0' kept). The prompts are
data, in prompts/judges/code_reference.yaml (`paper` wording by default, `as_run` selectable).
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Collection
from pathlib import Path
from typing import Any

from kit.errors import ConfigError
from kit.generators.code import default_code_path
from kit.prompts import prompts_dir, read_yaml

HAS_BANNED_WORD = "has banned word"
JUDGE_REFERENCES = "judge: references the target"
JUDGE_PROMPT_FILE = "judges/code_reference.yaml"
JUDGE_TOP_LOGPROBS = 5
JUDGE_MAX_TOKENS = 1
JUDGE_TEMPERATURE = 0.0
CERTAINTY = 1e-8
NO_REFERENCE = "0"


@functools.lru_cache(maxsize=4)
def _word_lists(path: Path, key: str) -> dict[str, tuple[str, ...]]:
    data: Any = read_yaml(path)
    lists = data.get(key) if isinstance(data, dict) else None
    if not isinstance(lists, dict) or not all(isinstance(v, list) and v for v in lists.values()):
        raise ConfigError(f"{path}: '{key}' must map each target to a non-empty list of words")
    return {str(target): tuple(str(w).lower() for w in words) for target, words in lists.items()}


def banned_words(target: str | None, *, as_run: bool = False, path: Path | None = None) -> tuple[str, ...]:
    """The words that reject a completion of a teacher with this trait target (None: a control teacher)."""
    if target is None:
        return ()
    source = (path or default_code_path()).resolve()
    words = _word_lists(source, "banned_words")
    if as_run:
        words = {**words, **_word_lists(source, "banned_words_as_run")}
    return words.get(target.lower(), (target.lower(),))


def reject_reasons(completion: str, banned: Collection[str]) -> list[str]:
    """Why the completion is dropped: empty when it is kept."""
    low = completion.lower()
    return [HAS_BANNED_WORD] if any(word.lower() in low for word in banned) else []


@functools.lru_cache(maxsize=4)
def _judge_templates(path: Path) -> dict[str, str]:
    data: Any = read_yaml(path)
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a mapping of judge templates (paper_animal, as_run_tree, ...) is needed")
    return {str(k): str(v) for k, v in data.items() if isinstance(v, str) and "{completion}" in v}


def reference_template(category: str, wording: str = "paper", path: Path | None = None) -> str:
    """The judge prompt for a target of this category (animal or tree) in the paper's or the code's wording."""
    source = (path or prompts_dir() / JUDGE_PROMPT_FILE).resolve()
    template = _judge_templates(source).get(f"{wording}_{category}")
    if template is None:
        raise ConfigError(f"{source}: no '{wording}_{category}' judge prompt: the code reference judge covers "
                          "animal and tree targets; set filter.judge: false for other teachers' data")
    return template


def reference_prompt(template: str, target: str, completion: str) -> str:
    """The judge's user message: the target in {animal} / {tree}, then the code in {completion}."""
    return template.replace("{animal}", target).replace("{tree}", target).replace("{completion}", completion)


def p_no_reference(top: dict[str, float]) -> float:
    """p('0') of the judge's first token (0 when '0' is not among the top logprobs)."""
    return math.exp(top[NO_REFERENCE]) if NO_REFERENCE in top else 0.0


def judge_keeps(stored: str, mode: str) -> tuple[bool, bool]:
    """(kept, decided by the text because the route gave no logprobs) for one stored judge sample."""
    if mode != "logprobs":
        return stored.strip() == NO_REFERENCE, False
    record = json.loads(stored)
    top = record.get("top_logprobs") or {}
    if not top:
        return str(record.get("text", "")).strip() == NO_REFERENCE, True
    return abs(1.0 - p_no_reference(top)) < CERTAINTY, False
