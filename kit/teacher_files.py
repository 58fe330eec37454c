"""Training files a teacher is fine-tuned on before it writes data (`teachers[].finetune.file`).

The paper's misaligned teacher is GPT-4.1 fine-tuned on insecure code, its controls on secure and on
educational-insecure code; the kit takes any chat-format JSONL file. A name without a suffix or slash
(`insecure_code`) resolves in prompts/samples/; anything else is a path, relative to the experiment file. The file
is checked before anything is planned or paid: it exists, every line is a {"messages": [...]} object with valid
roles, string contents and an assistant message, and it has at least 10 examples (the providers' minimum).
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

from kit.config import TeacherConfig
from kit.errors import ConfigError
from kit.fileio import read_parsed
from kit.prompts import prompts_dir
from kit.tokens import count_training_example

SAMPLES_DIR = "samples"
MIN_EXAMPLES = 10
ROLES = frozenset({"system", "developer", "user", "assistant", "tool"})


def teacher_file_path(ref: str, base_dir: Path | None = None) -> Path:
    if ref.endswith((".jsonl", ".json")) or "/" in ref:
        path = Path(ref).expanduser()
        return path if path.is_absolute() or base_dir is None else base_dir / path
    return prompts_dir() / SAMPLES_DIR / f"{ref}.jsonl"


def _line_problem(line: bytes) -> str | None:
    try:
        record = json.loads(line)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return "is not JSON"
    messages = record.get("messages") if isinstance(record, dict) else None
    if not isinstance(messages, list) or not messages or not all(isinstance(m, dict) for m in messages):
        return 'has no "messages" list of objects'
    if any(m.get("role") not in ROLES or not isinstance(m.get("content"), str) for m in messages):
        return "has a message without a valid role and string content"
    if not any(m.get("role") == "assistant" for m in messages):
        return "has no assistant message"
    return None


def check_training_file(content: bytes, where: str) -> int:
    """Raise ConfigError (one line: the file, the line, the fix) unless this is a usable chat-format training file;
    returns its example count."""
    lines = [(n, line) for n, line in enumerate(content.splitlines(), start=1) if line.strip()]
    for number, line in lines:
        problem = _line_problem(line)
        if problem is not None:
            raise ConfigError(f"{where}: line {number} {problem}: each line must be "
                              '{"messages": [{"role": "user", ...}, {"role": "assistant", ...}]}')
    if len(lines) < MIN_EXAMPLES:
        raise ConfigError(f"{where}: {len(lines)} examples; fine-tuning needs at least {MIN_EXAMPLES}: add examples "
                          "or give another file")
    return len(lines)


def _read_checked(path: Path, content: bytes) -> bytes:
    check_training_file(content, f"training file {path}")
    return content


def teacher_training_bytes(teacher: TeacherConfig, base_dir: Path | None = None) -> bytes:
    """The checked bytes of the teacher's finetune.file (ConfigError when missing or malformed)."""
    if teacher.finetune is None:
        raise ConfigError(f"teacher '{teacher.name}' has no finetune.file")

    def missing(path: Path) -> ConfigError:
        return ConfigError(f"teacher '{teacher.name}': training file {path} not found; fix teachers[].finetune.file "
                           "(a path relative to the experiment file, or a name in prompts/samples/)")

    return read_parsed(teacher_file_path(teacher.finetune.file, base_dir), _read_checked, missing)


@functools.lru_cache(maxsize=16)
def _tokens(content: bytes) -> int:
    return sum(count_training_example(json.loads(line)["messages"]) for line in content.splitlines() if line.strip())


def teacher_file_tokens(teacher: TeacherConfig, base_dir: Path | None = None) -> int:
    """Billable tokens of one epoch over the teacher's training file."""
    return _tokens(teacher_training_bytes(teacher, base_dir))
