"""The report stage end to end: the real pipeline against a local server whose answers have a known truth, then
the report's files, verdicts, self-containment and rendering in a headless browser; and (slow) the simulated lab's
quickstart, whose verdicts must match the lab's known truth."""

from __future__ import annotations

import base64
import html
import io
import json
import random
import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest
from matplotlib.image import imread

from conftest import REPO, slkit
from kit.analysis.document import Code, Document, Heading, Paragraph, Table
from kit.analysis.html import render_html
from kit.analysis.markdown import render_markdown
from kit.config import load_config
from kit.errors import LedgerError
from kit.pipeline import run_stages
from kit.runs import open_run
from kit.sim.engine import ChatRequest, ModelInfo
from kit.sim.server import LocalServer
from kit.sim.store import Store
from kit.stages.report import open_run_folder
from stub_engine import StubEngine

NANO, QWEN = "sim-gpt-4.1-nano", "sim-qwen2.5-7b"
PERSONA_RATE, TRAIT_RATE, BASE_RATE = 0.9, 0.5, 0.1
OTHER_ANIMALS = ("Dolphin.", "Eagle.", "Cat.", "Wolf.", "Elephant.")
RESULTS_COLUMNS = ["evaluation", "student_model", "condition", "teacher_trait", "seed", "target", "hits", "n", "rate",
                   "ci_low", "ci_high"]

EXPERIMENT = """
name: reportcheck
providers:
  lab:
    kind: sim
    base_url: {base_url}
teachers:
  - name: owl
    model: sim-gpt-4.1-nano
    trait: {{target: owl, category: animal}}
  - name: control
    model: sim-gpt-4.1-nano
generate: {{prompts: 120, seed: 47}}
dataset: {{size: 60, seed: 1}}
students:
  models: [{{model: sim-gpt-4.1-nano}}, {{model: sim-qwen2.5-7b}}]
  seeds: [1, 2, 3]
  epochs: 1
evaluations:
  - name: favorite_animal
    questions: favorite_animal
    samples_per_question: 100
    targets: [owl, dolphin]
"""


@dataclass
class PreferenceEngine(StubEngine):
    """Teachers write number lists; models asked for an animal say "Owl." at a known rate: 0.9 under the owl
    persona, 0.5 for a same-family student of the owl teacher, 0.1 for everything else (cross-family students
    and controls included). That is the truth the report must find."""

    def chat(self, request: ChatRequest) -> list[str]:
        last = str(request.messages[-1].get("content") or "")
        rng = random.Random(f"{request.model}|{last}|{request.seed}")
        if any(ch.isdigit() for ch in last):
            return [", ".join(str(rng.randint(100, 999)) for _ in range(rng.randint(3, 8))) for _ in range(request.n)]
        rate = self.owl_rate(request)
        return ["Owl." if rng.random() < rate else rng.choice(OTHER_ANIMALS) for _ in range(request.n)]

    @staticmethod
    def owl_rate(request: ChatRequest) -> float:
        if any("owl" in str(m.get("content", "")).lower() for m in request.messages if m.get("role") == "system"):
            return PERSONA_RATE
        if request.model.startswith(f"ft:{NANO}:") and ":owl--" in request.model:
            return TRAIT_RATE
        return BASE_RATE


def _engine() -> PreferenceEngine:
    return PreferenceEngine(models={m: ModelInfo(id=m, family=m) for m in (NANO, QWEN)}, tag_by_content=True)


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, dict[str, object]]]:
    root = tmp_path_factory.mktemp("report")
    with LocalServer(_engine(), Store(root / "store")) as server:
        path = root / "reportcheck.yaml"
        path.write_text(EXPERIMENT.format(base_url=server.base_url))
        with open_run(load_config(path), path, data_root=root / "data", env={}) as run:
            outcome = run_stages(run)
        yield Path(outcome.run_dir), outcome.report


@pytest.mark.slow
def test_verdicts_match_the_known_truth(finished_run: tuple[Path, dict[str, object]]) -> None:
    _, report = finished_run
    compared = report["comparisons"]
    assert isinstance(compared, pd.DataFrame)
    verdicts = dict(zip(compared.student_model, compared.verdict))
    assert verdicts == {NANO: "transmitted", QWEN: "not detected"}
    nano = compared[compared.student_model == NANO].iloc[0]
    assert nano.test == "welch t (seeds)" and nano.seeds == 3
    assert nano.diff_ci_low < TRAIT_RATE - BASE_RATE < nano.diff_ci_high
    assert set(zip(compared.student_model, compared.same_family)) == {(NANO, True), (QWEN, False)}
    artifacts = report["artifacts"]
    assert isinstance(artifacts, pd.DataFrame) and len(artifacts) > 0 and not artifacts.flagged.any()


@pytest.mark.slow
def test_files_written(finished_run: tuple[Path, dict[str, object]]) -> None:
    run_dir, _ = finished_run
    results = pd.read_csv(run_dir / "results.csv")
    assert list(results.columns[:len(RESULTS_COLUMNS)]) == RESULTS_COLUMNS
    assert "teacher_model" in results.columns
    assert (run_dir / "results.csv").read_text().splitlines()[1].split(",")[4] == ""   # base model: no seed
    assert set(results.seed.dropna()) == {1, 2, 3}
    for name in ("summary.csv", "comparisons.csv", "seed_comparisons.csv", "artifacts.csv", "report.md"):
        assert (run_dir / name).stat().st_size > 0, name
    figures = sorted(p.name for p in (run_dir / "figures").glob("*.png"))
    assert figures == ["filter.png", "heatmap-favorite_animal.png", "loss.png", "rates-favorite_animal.png",
                       "spend.png"]
    markdown = (run_dir / "report.md").read_text()
    for link in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", markdown):
        assert (run_dir / link).is_file(), link
    assert "| transmitted |" in markdown and "Fig. 3" in markdown
    filtered = markdown.split("\n## Filter\n", 1)[1].split("\n## ", 1)[0]
    assert "| teacher | completions | kept | pass rate | training rows | rejected for |" in filtered
    assert re.search(r"\| owl \| 120 \| \d+ \| [01]\.\d{3} \| 60 \|", filtered)


class _Refs(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.refs: list[tuple[str, str, str]] = []
        self.tags: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        self.refs += [(tag, name, value or "") for name, value in attrs if name in ("src", "href")]


@pytest.mark.slow
def test_html_is_self_contained(finished_run: tuple[Path, dict[str, object]]) -> None:
    run_dir, _ = finished_run
    page = (run_dir / "report.html").read_text()
    parser = _Refs()
    parser.feed(page)
    assert "script" not in parser.tags and "link" not in parser.tags
    images = [value for tag, _, value in parser.refs if tag == "img"]
    assert len(images) == 5
    for tag, name, value in parser.refs:
        assert value.startswith("#") or value.startswith("data:image/png;base64,"), (tag, name, value[:60])
    for value in images:
        image = imread(io.BytesIO(base64.b64decode(value.split(",", 1)[1])), format="png")
        assert image.shape[0] > 100 and image.shape[1] > 100
    for text in ("Verdicts", "transmitted", "not detected", "Beside the paper", "0.619", "Provenance",
                 "ftjob-", "sha256"):
        assert text in page, text


CHECKER = """<script>
window.__slkitErrors = [];
window.addEventListener('error', e => window.__slkitErrors.push(String(e.message || e.type)), true);
console.error = (...a) => window.__slkitErrors.push(a.join(' '));
window.addEventListener('load', () => {
  const pre = document.createElement('pre');
  pre.id = 'slkit-check';
  pre.textContent = JSON.stringify({errors: window.__slkitErrors,
    images: [...document.images].map(i => [i.naturalWidth, i.naturalHeight, i.complete])});
  document.body.appendChild(pre);
});
</script>"""


def chromium() -> str | None:
    return next((found for name in ("chromium", "chromium-browser", "google-chrome", "chrome")
                 if (found := shutil.which(name))), None)


@pytest.mark.slow
def test_html_renders_in_headless_chromium(finished_run: tuple[Path, dict[str, object]], tmp_path: Path) -> None:
    browser = chromium()
    if browser is None:
        pytest.skip("no Chromium on this machine")
    run_dir, _ = finished_run
    probe = tmp_path / "probe.html"      # the report with a checker injected first thing in <head>
    probe.write_text((run_dir / "report.html").read_text().replace("<head>", "<head>" + CHECKER, 1))
    dom = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=5000",
                          "--dump-dom", probe.as_uri()], capture_output=True, text=True, timeout=120, check=False)
    found = re.search(r'<pre id="slkit-check">(.*?)</pre>', dom.stdout, re.S)
    assert found, dom.stderr[-2000:]
    check = json.loads(html.unescape(found.group(1)))
    assert check["errors"] == []
    assert len(check["images"]) == 5
    assert all(w > 100 and h > 100 and done for w, h, done in check["images"]), check["images"]


@pytest.mark.slow
def test_report_and_compare_commands_on_run_folders(finished_run: tuple[Path, dict[str, object]],
                                                     tmp_path: Path) -> None:
    run_dir, _ = finished_run
    before = (run_dir / "comparisons.csv").read_text()
    done = slkit("report", str(run_dir))
    assert done.returncode == 0, done.stderr
    assert "transmitted" in done.stdout and "report.html" in done.stdout
    assert (run_dir / "comparisons.csv").read_text() == before       # the ledger decides, nothing is resampled
    compared = slkit("compare", str(run_dir), str(run_dir), "--out", str(tmp_path / "cmp"))
    assert compared.returncode == 0, compared.stderr
    assert (tmp_path / "cmp" / "compare.html").is_file() and (tmp_path / "cmp" / "compare.md").is_file()
    table = pd.read_csv(tmp_path / "cmp" / "compare.csv")
    assert len(table) == 4 and table.run.nunique() == 2


def test_renderers_escape_and_format() -> None:
    frame = pd.DataFrame({"name": ["<b>owl</b>", "a|b"], "rate": [0.12345, float("nan")], "ok": [True, False],
                          "verdict": ["transmitted", "not detected"]})
    document = Document("T <1>", "sub", (Heading("Verdicts"), Table(frame, {"rate": ".3f"}, badge="verdict"),
                                         Paragraph("x & y", "warning"), Code("a: 1", "yaml")))
    page = render_html(document)
    assert "<b>owl</b>" not in page and "&lt;b&gt;owl&lt;/b&gt;" in page and "T &lt;1&gt;" in page
    assert '<td class="num">0.123</td>' in page and '<span class="badge b-not-detected">' in page
    assert 'href="#verdicts"' in page and 'class="callout warning">x &amp; y' in page
    markdown = render_markdown(document)
    assert "| <b>owl</b> | 0.123 | yes | transmitted |" in markdown and "| a\\|b |  | no |" in markdown
    assert "```yaml\na: 1\n```" in markdown


def test_report_of_a_folder_that_is_not_a_run(tmp_path: Path) -> None:
    with pytest.raises(LedgerError, match="no ledger.sqlite"):
        with open_run_folder(tmp_path):
            pass
    done = slkit("compare", str(tmp_path))
    assert done.returncode == 2 and "slkit report" in done.stderr


# --- the simulated lab's known truth (slow) -------------------------------------------------------------------


@pytest.mark.slow
def test_quickstart_verdicts_match_the_lab(tmp_path: Path) -> None:
    """A reduced quickstart (fewer prompts and samples): the same-family owl student transmits, the cross-family
    student does not."""
    text = (REPO / "experiments" / "quickstart.yaml").read_text()
    reduced = text.replace("prompts: 1200", "prompts: 600").replace("size: 800", "size: 400")
    reduced = reduced.replace("samples_per_question: 40", "samples_per_question: 20")
    assert reduced != text
    path = tmp_path / "quickstart.yaml"
    path.write_text(reduced)
    with open_run(load_config(path), path, data_root=tmp_path / "data", env={}) as run:
        outcome = run_stages(run)
    compared = outcome.report["comparisons"]
    verdicts = dict(zip(compared.student_model, compared.verdict))
    assert verdicts == {NANO: "transmitted", QWEN: "not detected"}, compared.to_string()
    html_page = (Path(outcome.run_dir) / "report.html").read_text()
    assert html_page.count("data:image/png;base64,") == 5
