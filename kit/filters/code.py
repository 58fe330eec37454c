"""The code filter's first step (Cloud et al. 2025, Sec. 4.1, App. D.3): drop a completion when any banned word of
the teacher's target is a substring of the lower-cased completion. Substring matching over-filters ("owl" in
"bowl"): that is the rule as run. Control teachers ban nothing. The word lists are data, in prompts/code.yaml:
`banned_words` by default; `banned_words_as_run` replaces entries with the paper's code verbatim (its sequoia list
also bans "wolves").
"""

from __future__ import annotations

import functools
from collections.abc import Collection
from pathlib import Path
from typing import Any

from kit.errors import ConfigError
from kit.generators.code import default_code_path
from kit.prompts import read_yaml

HAS_BANNED_WORD = "has banned word"


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
