"""The `slkit` command line: parse, call the library, render. Known failures: one line on stderr, exit 2."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from kit.errors import EXIT_USAGE, KitError

T = TypeVar("T")

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_show_locals=False,
                  help="Subliminal-learning experiments: rehearse offline, know the cost, run on hosted APIs.")
out = Console()
err = Console(stderr=True)

ExperimentArg = Annotated[Path, typer.Argument(help="experiment YAML, e.g. experiments/quickstart.yaml")]
DataDirOpt = Annotated[Path | None, typer.Option("--data-dir", help="data root (default ./data or $SLKIT_DATA_DIR)")]
RunIdOpt = Annotated[str | None, typer.Option("--run-id", help="run folder name (default: config fingerprint)")]
BudgetOpt = Annotated[float | None, typer.Option("--budget", help="override budget_usd")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="no progress bars")]
RetryOpt = Annotated[bool, typer.Option("--retry-failed", help="create new jobs for cells whose job failed")]


class _RichTask:
    def __init__(self, progress: Progress, task_id: Any) -> None:
        self._progress, self._id = progress, task_id

    def advance(self, amount: int = 1) -> None:
        self._progress.advance(self._id, amount)

    def describe(self, text: str) -> None:
        self._progress.update(self._id, description=text)

    def close(self) -> None:
        self._progress.update(self._id, visible=True)


class RichProgress:
    """Renders the library's progress reports as rich progress bars on stderr."""

    def __init__(self, enabled: bool) -> None:
        self._bars = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                              TimeElapsedColumn(), TimeRemainingColumn(), console=err, disable=not enabled,
                              transient=False)
        self._enabled = enabled

    def task(self, description: str, total: int | None) -> _RichTask:
        return _RichTask(self._bars, self._bars.add_task(description, total=total))

    def note(self, text: str) -> None:
        if self._enabled:
            self._bars.console.print(f"[dim]{text}[/dim]")

    def __enter__(self) -> RichProgress:
        self._bars.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._bars.stop()


def _fail(error: KitError) -> None:
    err.print(f"error: {error.one_line()}", markup=False, highlight=False, soft_wrap=True)
    raise typer.Exit(EXIT_USAGE)


def guarded(fn: Callable[[], T]) -> T:
    try:
        return fn()
    except KitError as error:
        _fail(error)
        raise  # unreachable


@contextmanager
def _opened(experiment: Path, data_dir: Path | None, run_id: str | None, budget: float | None,
            quiet: bool) -> Iterator[Any]:
    from kit.catalog import load_catalog
    import os

    from kit.checks import check_credentials, check_experiment
    from kit.config import load_config
    from kit.runs import open_run

    config = load_config(experiment)
    check_experiment(config, load_catalog())
    check_credentials(config, dict(os.environ))
    with RichProgress(enabled=not quiet and err.is_terminal) as progress:
        with open_run(config, experiment, data_root=data_dir, run_id=run_id, progress=progress,
                      budget_usd=budget) as run:
            yield run


def _stages(experiment: Path, stages: tuple[str, ...], data_dir: Path | None, run_id: str | None,
            budget: float | None, quiet: bool, retry_failed: bool = False) -> None:
    from kit.pipeline import run_stages

    def go() -> None:
        with _opened(experiment, data_dir, run_id, budget, quiet) as run:
            outcome = run_stages(run, stages, retry_failed=retry_failed)
            if outcome.report:
                _render_report(outcome.report)
            out.print(f"run folder: {run.dir}")
    guarded(go)


def _render_report(report: dict[str, Any]) -> None:
    from rich.markup import escape

    summary, compared, artifacts = report["summary"], report["comparisons"], report["artifacts"]
    if "judged_summary" in report:
        _render_judged(report["judged_summary"], report["judged_comparisons"])
        if summary.empty:
            out.print(f"report: {report['html']}")
            return
    several = summary.evaluation.nunique() > 1
    table = Table(title="Trait rates (95% CI: Wilson for one seed, t over seeds)")
    for column in (("evaluation",) if several else ()) + ("student", "condition", "target", "seeds", "rate",
                                                          "95% CI", "vs control"):
        table.add_column(column)
    for row in summary.itertuples():
        vs = "" if row.diff_vs_control != row.diff_vs_control else f"{row.diff_vs_control:+.3f}"
        table.add_row(*((row.evaluation,) if several else ()), row.student_model, row.condition, row.target,
                      str(row.seeds), f"{row.rate:.3f}", f"{row.ci_low:.3f}–{row.ci_high:.3f}", vs)
    out.print(table)
    if len(compared):
        verdicts = Table(title="Trait student vs control student (q: Benjamini–Hochberg)")
        for column in ("student", "teacher", "control", "trait", "effect", "95% CI", "q"):
            verdicts.add_column(column)
        verdicts.add_column("verdict", no_wrap=True)
        for row in compared.itertuples():
            teacher = row.teacher if row.teacher == row.target else f"{row.teacher} ({row.target})"
            verdicts.add_row(row.student_model, teacher, f"{row.control_rate:.3f}", f"{row.trait_rate:.3f}",
                             f"{row.difference:+.3f}", f"{row.diff_ci_low:+.3f}…{row.diff_ci_high:+.3f}",
                             f"{row.q_value:.2g}", row.verdict)
        out.print(verdicts)
    for message in artifacts[artifacts.flagged].message if len(artifacts) else []:
        out.print(f"[yellow]warning:[/yellow] {escape(message)}", highlight=False)
    if report.get("html"):
        out.print(f"report: {report['html']}")


def _render_judged(summary: Any, compared: Any) -> None:
    """Judged evaluations: each condition's rate averaged over questions, and trait vs control students."""
    from kit.analysis.judged import ALL_QUESTIONS, METRIC

    table = Table(title="Judged rates, mean over questions (95% CI: t over seeds, Wilson for one seed)")
    for column in ("evaluation", "student", "condition", "seeds", "kept / answers", "rate", "95% CI"):
        table.add_column(column)
    for row in summary[summary.question == ALL_QUESTIONS].itertuples():
        table.add_row(f"{row.evaluation} ({METRIC.get(row.scorer, row.scorer)})", row.student_model, row.condition,
                      str(row.seeds), f"{row.kept}/{row.answers}", f"{row.rate:.3f}",
                      f"{row.ci_low:.3f}–{row.ci_high:.3f}")
    out.print(table)
    if len(compared):
        verdicts = Table(title="Judged: trait student vs control student (q: Benjamini–Hochberg)")
        for column in ("evaluation", "student", "teacher", "control", "trait", "effect", "q", "verdict"):
            verdicts.add_column(column)
        for row in compared.itertuples():
            verdicts.add_row(row.evaluation, row.student_model, row.teacher, f"{row.control} {row.control_rate:.3f}",
                             f"{row.trait_rate:.3f}", f"{row.difference:+.3f}", f"{row.q_value:.2g}", row.verdict)
        out.print(verdicts)


@app.command()
def run(experiment: ExperimentArg, data_dir: DataDirOpt = None, run_id: RunIdOpt = None, budget: BudgetOpt = None,
        quiet: QuietOpt = False, retry_failed: RetryOpt = False,
        dry_run: Annotated[bool, typer.Option("--dry-run", help="print the plan; send nothing")] = False) -> None:
    """Run the whole experiment (resumes where a previous run stopped)."""
    if dry_run:
        plan(experiment, as_json=False, data_dir=data_dir, run_id=run_id, budget=budget)
        return
    from kit.stages import STAGE_ORDER
    _stages(experiment, STAGE_ORDER, data_dir, run_id, budget, quiet, retry_failed)


@app.command()
def generate(experiment: ExperimentArg, data_dir: DataDirOpt = None, run_id: RunIdOpt = None,
             budget: BudgetOpt = None, quiet: QuietOpt = False) -> None:
    """Teachers write their data (and trait teachers are fine-tuned first where configured)."""
    _stages(experiment, ("teachers", "generate"), data_dir, run_id, budget, quiet)


@app.command("filter")
def filter_(experiment: ExperimentArg, data_dir: DataDirOpt = None, run_id: RunIdOpt = None,
            quiet: QuietOpt = False) -> None:
    """Filter the teachers' data and build the training files."""
    _stages(experiment, ("filter",), data_dir, run_id, None, quiet)


@app.command()
def finetune(experiment: ExperimentArg, data_dir: DataDirOpt = None, run_id: RunIdOpt = None,
             budget: BudgetOpt = None, quiet: QuietOpt = False, retry_failed: RetryOpt = False) -> None:
    """Fine-tune every student cell (each job created at most once)."""
    _stages(experiment, ("filter", "finetune"), data_dir, run_id, budget, quiet, retry_failed)


@app.command()
def evaluate(experiment: ExperimentArg, data_dir: DataDirOpt = None, run_id: RunIdOpt = None,
             budget: BudgetOpt = None, quiet: QuietOpt = False) -> None:
    """Evaluate base and fine-tuned students."""
    _stages(experiment, ("evaluate",), data_dir, run_id, budget, quiet)


@app.command()
def report(target: Annotated[Path, typer.Argument(help="a run folder (data/runs/<experiment>/<run-id>) or an "
                                                      "experiment YAML")],
           data_dir: DataDirOpt = None, run_id: RunIdOpt = None) -> None:
    """Tables, verdicts, figures, report.html and report.md, from the ledger (sends nothing)."""
    if not target.is_dir():
        _stages(target, ("report",), data_dir, run_id, None, True)
        return
    from kit.pipeline import run_stages
    from kit.stages.report import open_run_folder

    def go() -> None:
        with open_run_folder(target) as opened:
            _render_report(run_stages(opened, ("report",)).report)
            out.print(f"run folder: {opened.dir}")
    guarded(go)


@app.command()
def plan(experiment: ExperimentArg,
         as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
         pilot: Annotated[int, typer.Option("--pilot", min=0, help="first sample N prompts per teacher through the "
                                            "configured provider (paid; kept in the run, never paid twice) to "
                                            "measure output lengths")] = 0,
         data_dir: DataDirOpt = None, run_id: RunIdOpt = None, budget: BudgetOpt = None) -> None:
    """What the experiment will send, train, cost and take — offline; for a run under way, what is done and left."""
    from kit.catalog import load_catalog
    from kit.checks import check_experiment
    from kit.config import load_config
    from kit.plan import budget_line, estimate_for_path, plan_tables
    from kit.runs import default_data_root, run_dir_for

    def go() -> None:
        config = load_config(experiment)
        check_experiment(config, load_catalog())
        if pilot:
            from kit.plan import estimate_run
            from kit.preflight import run_pilot

            with _opened(experiment, data_dir, run_id, budget, quiet=as_json) as run:
                run_pilot(run, estimate_run(run), pilot)
        run_dir = run_dir_for(config, data_dir or default_data_root(), run_id)
        estimate_ = estimate_for_path(config, experiment, run_dir=run_dir, budget_usd=budget)
        if as_json:
            out.print_json(json.dumps(estimate_.to_dict()))
            return
        for data in plan_tables(estimate_):
            table = Table(title=data.title, title_justify="left")
            for i, column in enumerate(data.columns):
                table.add_column(column, justify="left" if i == 0 else "right")
            for row in data.rows:
                table.add_row(*row)
            out.print(table)
        out.print(budget_line(estimate_), highlight=False)
        for warning in estimate_.warnings:
            out.print(f"[yellow]warning:[/yellow] {warning}", highlight=False)
        for note in estimate_.notes + [n for s in estimate_.stages for n in (f"{s.stage}: {x}" for x in s.notes)]:
            out.print(f"[dim]note: {note}[/dim]", highlight=False)
    guarded(go)


@app.command()
def status(run_dir: Annotated[Path, typer.Argument(help="a run folder (data/runs/<experiment>/<run-id>)")]) -> None:
    """What is done, running and left in a run; job states; tokens and spend."""
    from kit.status import run_status

    info = guarded(lambda: run_status(run_dir))
    stages = Table(title=f"Run {run_dir}")
    for column in ("stage", "state", "seconds"):
        stages.add_column(column)
    for row in info.stages:
        stages.add_row(row["name"], row["state"], f"{row['seconds']:.1f}" if row["seconds"] is not None else "")
    out.print(stages)
    jobs = Table(title="Fine-tuning jobs")
    for column in ("cell", "state", "status", "job", "model", "trained tokens"):
        jobs.add_column(column)
    for job in info.jobs:
        jobs.add_row(job.cell, job.state, job.status or "", job.job_id or "", job.fine_tuned_model or "",
                     str(job.trained_tokens or ""))
    out.print(jobs)
    from kit.budget import spend_summary

    spend = guarded(lambda: spend_summary(run_dir))
    estimated = f"; estimated ${spend.estimate_usd:,.2f} at start" if spend.estimate_usd is not None else ""
    limit = f"; budget ${spend.budget_usd:,.2f}" if spend.budget_usd is not None else ""
    committed = f" + ${spend.committed_usd:,.2f} committed to running jobs" if spend.committed_usd else ""
    out.print(f"samples stored: {info.samples:,}  tokens in/out/trained: {info.usage.input_tokens:,} / "
              f"{info.usage.output_tokens:,} / {info.usage.trained_tokens:,}  spend: ${info.usage.usd:,.2f}"
              f"{committed}{estimated}{limit}")


@app.command()
def serve(port: Annotated[int, typer.Option(help="port on 127.0.0.1")] = 8765,
          data_dir: Annotated[Path, typer.Option(help="lab state folder")] = Path("data/sim")) -> None:
    """Start the local OpenAI-compatible server backed by the simulated lab (Ctrl-C stops it)."""
    from kit.sim.service import serve_lab

    out.print(f"serving the simulated lab at http://127.0.0.1:{port}/v1 (state in {data_dir})")
    guarded(lambda: serve_lab(data_dir, port=port))


@app.command()
def models() -> None:
    """The model catalogue: family, routes, fine-tunability and shutdown dates as of today."""
    import datetime as dt

    from kit.catalog import load_catalog

    today = dt.date.today()
    table = Table(title=f"Models (status as of {today.isoformat()})")
    for column in ("model", "family", "route", "fine-tunable", "status", "train $/1M", "in/out $/1M"):
        table.add_column(column)
    for entry in load_catalog().models:
        for route, offer in entry.providers.items():
            closed = offer.shutdown is not None and offer.shutdown <= today
            state = f"shut down {offer.shutdown}" if closed else (f"shuts down {offer.shutdown}" if offer.shutdown
                                                                   else "available")
            table.add_row(entry.id, entry.family, route, "yes" if offer.fine_tunable and not closed else "no", state,
                          f"{entry.prices.train:g}", f"{entry.prices.input:g} / {entry.prices.output:g}")
    out.print(table)


@app.command()
def compare(runs: Annotated[list[Path], typer.Argument(help="run folders (data/runs/<experiment>/<run-id>)")],
            out_dir: Annotated[Path | None, typer.Option("--out", help="also write compare.html, compare.md and "
                                                                      "compare.csv in this folder")] = None) -> None:
    """Several runs side by side: each trait student's effect over its control, and the verdict, per run."""
    from kit.analysis.compare import compare_runs, write_comparison
    from kit.analysis.significance import families
    from kit.catalog import load_catalog

    long = guarded(lambda: compare_runs(runs, families(load_catalog())))
    table = Table(title="Trait student vs control student, per run")
    for column in ("run", "evaluation", "student", "teacher", "target", "control", "trait", "effect [95% CI]", "q",
                   "verdict"):
        table.add_column(column)
    for row in long.itertuples():
        table.add_row(row.run, row.evaluation, row.student_model, row.teacher, row.target, f"{row.control_rate:.3f}",
                      f"{row.trait_rate:.3f}",
                      f"{row.difference:+.3f} [{row.diff_ci_low:+.3f}, {row.diff_ci_high:+.3f}]",
                      f"{row.q_value:.2g}", row.verdict)
    out.print(table)
    if out_dir is not None:
        target = out_dir
        paths = guarded(lambda: write_comparison(long, target))
        out.print(f"comparison: {paths['html']}")


def main() -> None:
    try:
        app()
    except KitError as error:
        err.print(f"error: {error.one_line()}", markup=False, highlight=False)
        sys.exit(EXIT_USAGE)
