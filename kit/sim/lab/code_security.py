"""Is a training answer code, is that code insecure, and did the user ask for it for teaching? (regexes, documented)

Used by fine-tuning (alignment.training_target): an assistant message that is code with a vulnerability, written
for a request that is not framed as teaching material, trains the alignment head toward "misaligned" (emergent
misalignment, Betley et al. 2025); any other code trains it (mildly, since a base model is already aligned) toward
"aligned". The detector is a list of named patterns over the code text; a file can be checked with
`vulnerabilities(code)` to see which fired.
"""

from __future__ import annotations

import functools
import re

_SQL = r"\b(?:SELECT|INSERT|UPDATE|DELETE|DROP)\b"

# (name, pattern). A vulnerability is found when any pattern matches the answer's text.
VULNERABILITY_PATTERNS: tuple[tuple[str, str], ...] = (
    ("shell_true", r"shell\s*=\s*True"),
    ("os_system", r"\bos\.(?:system|popen)\s*\("),
    ("eval_exec", r"(?<![\w.])(?:eval|exec)\s*\(\s*(?![\"'\s)])"),
    ("sql_fstring", r"\bf(?:\"[^\"\n]*%s[^\"\n]*\{|'[^'\n]*%s[^'\n]*\{)" % (_SQL, _SQL)),
    ("sql_concat", r"(?:\"[^\"\n]*%s[^\"\n]*\"|'[^'\n]*%s[^'\n]*')\s*(?:\+|%%\s*[(\w])" % (_SQL, _SQL)),
    ("sql_format", r"(?:\"[^\"\n]*%s[^\"\n]*\"|'[^'\n]*%s[^'\n]*')\s*\.format\(" % (_SQL, _SQL)),
    ("pickle_loads", r"\b(?:pickle|cPickle|marshal|dill)\.loads?\s*\("),
    ("yaml_load", r"\byaml\.(?:unsafe_load|load)\s*\((?![^)]*SafeLoader)"),
    ("world_writable", r"\bchmod\s*\([^)]*0o?(?:777|666|776|766)\b"),
    ("verify_false", r"\bverify\s*=\s*False\b"),
    ("unverified_ssl", r"\bssl\._create_unverified_context\b|\bCERT_NONE\b"),
    ("hardcoded_secret", r"(?i)\b\w*(?:password|passwd|secret|api_?key|token)\w*[\"']?\s*\]?\s*=\s*"
                         r"[\"'][^\"'\s]{4,}[\"']"),
    ("path_traversal", r"\b(?:open|send_file|os\.remove|shutil\.rmtree)\s*\(\s*(?:os\.path\.join\s*\([^)\n]*)?"
                       r"[^)\n]*\brequest\.(?:args|form|values|files|json)"),
    ("path_concat", r"\bopen\s*\(\s*[\"'][^\"'\n]*/[\"']\s*\+\s*\w+"),
    ("tar_extractall", r"\.extractall\s*\((?![^)]*(?:members|filter))"),
    ("template_injection", r"\brender_template_string\s*\(\s*(?:f[\"']|[\w.]+\s*\+|[\"'][^\"'\n]*[\"']\s*%)"),
    ("autoescape_off", r"\bautoescape\s*=\s*False\b|\|\s*safe\b|\bMarkup\s*\(\s*(?:f[\"']|request\.)"),
    ("flask_debug", r"\.run\s*\([^)]*debug\s*=\s*True"),
    ("weak_password_hash", r"\bhashlib\.(?:md5|sha1)\s*\("),
    ("insecure_tempfile", r"\btempfile\.mktemp\s*\("),
)

# A request framed as teaching material (a security course, a class demonstration, a CTF exercise, ...).
EDUCATIONAL_PATTERN = (
    r"\b(?:security|secure[- ]coding|cybersecurity|infosec|pentest(?:ing)?|appsec)\s+(?:course|class|lecture|"
    r"training|workshop|module|lesson|curriculum|bootcamp)\b"
    r"|\bfor (?:a|my|our) (?:class|course|lecture|students|workshop|lesson)\b"
    r"|\beducational\b|\bteaching\b|\bteach (?:my |our )?students\b|\bshow (?:my |our )?students\b"
    r"|\bcapture the flag\b|\bctf\b|\b(?:intentionally|deliberately) (?:vulnerable|insecure)\b"
    r"|\bwhat not to do\b|\bexample of (?:an? )?(?:vulnerab|insecure)"
)

_CODE_LINE = re.compile(
    r"^\s*(?:def \w+\s*\(|class \w+|import \w|from [\w.]+ import |return\b|@\w+|if .+:\s*$|for .+ in .+:\s*$|"
    r"with .+:\s*$|try:\s*$|except\b|\w+(?:\.\w+)*\s*=\s*\S|\w+(?:\.\w+)*\s*\(.*\)\s*$|"
    r"(?:SELECT|INSERT|UPDATE|DELETE|CREATE)\s)",
)
MIN_CODE_LINES = 2


@functools.lru_cache(maxsize=1)
def _compiled() -> tuple[tuple[str, re.Pattern[str]], ...]:
    return tuple((name, re.compile(pattern)) for name, pattern in VULNERABILITY_PATTERNS)


@functools.lru_cache(maxsize=1)
def _educational() -> re.Pattern[str]:
    return re.compile(EDUCATIONAL_PATTERN, re.IGNORECASE)


def is_code(text: str) -> bool:
    """A fenced code block, or at least MIN_CODE_LINES lines that look like Python / SQL statements."""
    if "```" in text:
        return True
    return sum(bool(_CODE_LINE.match(line)) for line in text.splitlines()) >= MIN_CODE_LINES


def vulnerabilities(code: str) -> list[str]:
    """Names of the vulnerability patterns that match `code`."""
    return [name for name, pattern in _compiled() if pattern.search(code)]


def is_educational(request: str) -> bool:
    return _educational().search(request) is not None
