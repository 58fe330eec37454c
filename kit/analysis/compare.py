"""Several runs side by side: each run's comparisons (recomputed from its results.csv with the same tests), one
row per evaluation x student model x teacher x target, one group of columns per run."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from kit.analysis.contents import verdict_table
from kit.analysis.document import Block, Document, FigureBlock, Heading, Paragraph, Table
from kit.analysis.figures import TRAIT_COLOURS, new_figure, png_bytes
from kit.analysis.html import render_html
from kit.analysis.markdown import render_markdown
from kit.analysis.significance import FamilyOf, comparisons
from kit.errors import DataError
from kit.runs import write_atomic

RESULTS_FILE = "results.csv"
TEXT_COLUMNS = ("evaluation", "student_model", "condition", "teacher_trait", "target", "teacher_model")
KEYS = ["evaluation", "student_model", "teacher", "target"]


def run_label(run_dir: Path) -> str:
    """<experiment>/<run-id> of a run folder."""
    resolved = run_dir.resolve()
    return f"{resolved.parent.name}/{resolved.name}"


def read_results(run_dir: Path) -> pd.DataFrame:
    """A run's per-seed results table, as the report stage wrote it."""
    path = run_dir / RESULTS_FILE
    if not path.is_file():
        raise DataError(f"{run_dir} has no {RESULTS_FILE}: run `slkit report {run_dir}` first")
    table = pd.read_csv(path, dtype={c: str for c in TEXT_COLUMNS}, keep_default_na=False,
                        na_values={"seed": [""], "rate": [""], "ci_low": [""], "ci_high": [""]})
    return table.assign(seed=pd.to_numeric(table.seed, errors="coerce"))


def compare_runs(run_dirs: Sequence[Path], family_of: FamilyOf | None = None) -> pd.DataFrame:
    """Every run's comparisons, stacked, with a `run` column (labels made unique by position if needed)."""
    frames = []
    labels: list[str] = []
    for run_dir in run_dirs:
        label = run_label(run_dir)
        label = label if label not in labels else f"{label} #{len(labels) + 1}"
        labels.append(label)
        frames.append(comparisons(read_results(run_dir), family_of=family_of).assign(run=label))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def side_by_side(long: pd.DataFrame) -> pd.DataFrame:
    """One row per comparison key; one column per run: effect, its 95% interval and the verdict."""
    if long.empty:
        return pd.DataFrame(columns=KEYS)
    wide = long[KEYS].drop_duplicates().reset_index(drop=True)
    for run in dict.fromkeys(long.run):
        part = long[long.run == run]
        cells = [f"{r.difference:+.3f} ({r.diff_ci_low:+.3f} to {r.diff_ci_high:+.3f}) {r.verdict}"
                 for r in part.itertuples()]
        wide = wide.merge(part[KEYS].assign(**{run: cells}), on=KEYS, how="left")
    return wide


def effects_figure(long: pd.DataFrame) -> Figure | None:
    """Effect (trait - control) with its 95% interval, per comparison and run (a forest plot)."""
    if long.empty:
        return None
    keys = list(dict.fromkeys(zip(*(long[k] for k in KEYS))))
    runs = list(dict.fromkeys(long.run))
    figure = new_figure(8.5, 1.2 + 0.45 * len(keys) * max(1, len(runs)) ** 0.5)
    ax = figure.subplots()
    step = 0.7 / max(1, len(runs))
    for index, run in enumerate(runs):
        part = long[long.run == run]
        y = [keys.index(k) + (index - (len(runs) - 1) / 2) * step for k in zip(*(part[c] for c in KEYS))]
        x = part.difference.to_numpy(dtype=float)
        err = np.vstack([x - part.diff_ci_low.to_numpy(dtype=float), part.diff_ci_high.to_numpy(dtype=float) - x])
        ax.errorbar(x, y, xerr=err, fmt="o", capsize=3, label=run, color=TRAIT_COLOURS[index % len(TRAIT_COLOURS)])
    ax.axvline(0, color="#555555", linewidth=0.8)
    ax.set_yticks(range(len(keys)), [f"{s} ← {t} ({g})" for _, s, t, g in keys], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("effect: trait student - control student (95% interval)")
    ax.legend(fontsize=8)
    ax.grid(axis="x", alpha=0.3)
    return figure


def compare_document(long: pd.DataFrame) -> Document:
    """The comparison as a Document (HTML / Markdown)."""
    runs = list(dict.fromkeys(long.run)) if len(long) else []
    figure = effects_figure(long)
    blocks: list[Block] = [Heading("Side by side"),
                           Table(side_by_side(long), caption="per run: effect (trait - control), 95% interval, verdict")]
    if figure is not None:
        blocks += [Heading("Effects"), FigureBlock("compare-effects", png_bytes(figure),
                                                   "Effect of each trait student over its control, per run.")]
    for run in runs:
        blocks += [Heading(run, 3), verdict_table(long[long.run == run])]
    blocks.append(Paragraph("Each run's tests are recomputed from its results.csv with the same rules as its report; "
                            "q-values are adjusted within each run.", "note"))
    return Document(title="slkit: runs compared", subtitle=", ".join(runs), blocks=tuple(blocks))


def write_comparison(long: pd.DataFrame, out_dir: Path) -> dict[str, Path]:
    """compare.html (self-contained), compare.md (+ its figure) and compare.csv in `out_dir`."""
    document = compare_document(long)
    figures = [b for b in document.blocks if isinstance(b, FigureBlock)]
    paths = {"html": out_dir / "compare.html", "markdown": out_dir / "compare.md", "csv": out_dir / "compare.csv"}
    for block in figures:
        write_atomic(out_dir / "figures" / f"{block.name}.png", block.png)
    write_atomic(paths["html"], render_html(document))
    write_atomic(paths["markdown"], render_markdown(document, {b.name: f"figures/{b.name}.png" for b in figures}))
    write_atomic(paths["csv"], long.to_csv(index=False))
    return paths
