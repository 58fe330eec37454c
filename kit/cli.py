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
    results, compared = report["results"], report["comparisons"]
    table = Table(title="Trait rates (hits / n)")
    for column in ("evaluation", "student", "condition", "seed", "target", "rate", "95% CI", "n"):
        table.add_column(column)
    for row in results.itertuples():
        seed = "" if row.seed is None or row.seed != row.seed else str(int(row.seed))
        table.add_row(row.evaluation, row.student_model, row.condition, seed, row.target, f"{row.rate:.3f}",
                      f"{row.ci_low:.3f}–{row.ci_high:.3f}", str(row.n))
    out.print(table)
    if len(compared):
        verdicts = Table(title="Trait student vs control student (Fisher exact, one-sided)")
        for column in ("student", "teacher", "seed", "control", "trait", "p", "verdict"):
            verdicts.add_column(column)
        for row in compared.itertuples():
            verdicts.add_row(row.student_model, row.teacher, str(row.seed), f"{row.control_rate:.3f}",
                             f"{row.trait_rate:.3f}", f"{row.p_value:.2g}", row.verdict)
        out.print(verdicts)


@app.command()
def run(experiment: ExperimentArg, data_dir: DataDirOpt = None, run_id: RunIdOpt = None, budget: BudgetOpt = None,
        quiet: QuietOpt = False, retry_failed: RetryOpt = False,
        dry_run: Annotated[bool, typer.Option("--dry-run", help="print the plan; send nothing")] = False) -> None:
    """Run the whole experiment (resumes where a previous run stopped)."""
    if dry_run:
        plan(experiment, as_json=False)
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
def report(experiment: ExperimentArg, data_dir: DataDirOpt = None, run_id: RunIdOpt = None) -> None:
    """Write results.csv and comparisons.csv from the ledger (sends nothing)."""
    _stages(experiment, ("report",), data_dir, run_id, None, True)


@app.command()
def plan(experiment: ExperimentArg,
         as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False) -> None:
    """What the experiment will send, train and cost — computed offline."""
    from kit.catalog import load_catalog
    from kit.checks import check_experiment
    from kit.config import load_config
    from kit.plan import estimate

    def go() -> None:
        config = load_config(experiment)
        check_experiment(config, load_catalog())
        estimate_ = estimate(config)
        if as_json:
            out.print_json(json.dumps({"experiment": estimate_.experiment, "cells": estimate_.cells,
                                       "total_usd": estimate_.total_usd,
                                       "stages": [vars(s) for s in estimate_.stages]}))
            return
        table = Table(title=f"Plan: {config.name} ({estimate_.cells} student cells)")
        for column in ("stage", "requests", "input tok", "output tok", "trained tok", "jobs", "USD", "USD batch"):
            table.add_column(column, justify="right")
        for s in estimate_.stages:
            table.add_row(s.stage, f"{s.requests:,}", f"{s.input_tokens:,}", f"{s.output_tokens:,}",
                          f"{s.trained_tokens:,}", str(s.jobs), f"{s.usd:,.2f}", f"{s.usd_batch:,.2f}")
        table.add_row("total", "", "", "", "", "", f"{estimate_.total_usd:,.2f}", "")
        out.print(table)
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
    out.print(f"samples stored: {info.samples:,}  tokens in/out/trained: {info.usage.input_tokens:,} / "
              f"{info.usage.output_tokens:,} / {info.usage.trained_tokens:,}  spend: ${info.usage.usd:,.2f}")


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


def main() -> None:
    try:
        app()
    except KitError as error:
        err.print(f"error: {error.one_line()}", markup=False, highlight=False)
        sys.exit(EXIT_USAGE)
