"""The figures draw the data they are given: bar heights, error bars, heatmap cells, loss lines, PNG size."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest
from matplotlib.image import imread

from kit.analysis.figures import (DPI, filter_rates, loss_curves, loss_points, png_bytes, rate_bars, spend_by_stage,
                                  transmission_heatmap)
from kit.analysis.significance import comparisons
from kit.analysis.tables import summarize
from test_analysis_tables import EVAL, NANO, QWEN, experiment, row, table


def _summary() -> pd.DataFrame:
    rows = experiment([50, 60, 70], [10, 12, 14], 12, 100) + experiment([15], [14], 13, 100, student=QWEN)
    rows += [row(NANO, "base", "base", None, "eagle", 20, 100)]
    rows += [row(NANO, "control", "control", s, "eagle", 20 + s, 100) for s in (1, 2, 3)]
    return summarize(table(rows))


def _bars(ax: object) -> dict[str, list[float]]:
    return {c.get_label(): [p.get_height() for p in c.patches] for c in ax.containers  # type: ignore[attr-defined]
            if hasattr(c, "patches")}


def test_rate_bars_heights_and_intervals_match_the_table() -> None:
    summary = _summary()
    figure = rate_bars(summary, EVAL)
    assert figure is not None
    nano_ax, qwen_ax = figure.axes[:2]
    assert nano_ax.get_title() == NANO and [t.get_text() for t in nano_ax.get_xticklabels()] == ["eagle", "owl"]
    bars = _bars(nano_ax)
    assert bars["base model"] == pytest.approx([0.20, 0.12])
    assert bars["control student"] == pytest.approx([0.22, 0.12])
    assert bars["trait student"] == pytest.approx([0.0, 0.6])    # no eagle teacher: an empty slot
    owl = summary[(summary.student_model == NANO) & (summary.condition == "owl") & (summary.target == "owl")].iloc[0]
    trait = next(c for c in nano_ax.containers if c.get_label() == "trait student")
    segments = trait.errorbar.lines[2][0].get_segments()
    assert (segments[1][0][1], segments[1][1][1]) == (pytest.approx(owl.ci_low), pytest.approx(owl.ci_high))
    assert _bars(qwen_ax)["trait student"] == pytest.approx([0.0, 0.15])


def test_png_decodes_at_the_figure_size() -> None:
    figure = rate_bars(_summary(), EVAL)
    assert figure is not None
    image = imread(io.BytesIO(png_bytes(figure)), format="png")
    width, height = figure.get_size_inches() * DPI
    assert image.shape[:2] == (round(height), round(width))
    assert image[..., :3].std() > 0.05      # not a blank canvas


def test_heatmap_cells_and_marks() -> None:
    rows = experiment([60], [10], 10, 200) + experiment([22], [20], 20, 200, student=QWEN)
    compared = comparisons(table(rows))
    figure = transmission_heatmap(compared, EVAL)
    assert figure is not None
    ax = figure.axes[0]
    grid = ax.images[0].get_array()
    assert grid.shape == (2, 1)
    assert grid[0, 0] == pytest.approx(0.25) and grid[1, 0] == pytest.approx(0.01)
    texts = sorted(t.get_text() for t in ax.texts)
    assert texts == ["+0.01\n0/1", "+0.25*\n1/1"]


def test_loss_curves_plot_the_event_metrics_in_step_order() -> None:
    events = [{"data": {"step": 2, "train_loss": 0.5}}, {"message": "no data"}, {"data": {}},
              {"data": {"step": 1, "train_loss": 0.9}}, {"data": {"step": 3, "train_loss": 0.4, "total_steps": 3}}]
    points = loss_points(events)
    assert points == [(1.0, 0.9), (2.0, 0.5), (3.0, 0.4)]
    figure = loss_curves([(NANO, "owl--s1", points), (QWEN, "owl--s1", [(1.0, 2.0)]), (NANO, "empty", [])])
    assert figure is not None
    nano_ax = next(ax for ax in figure.axes if ax.get_title() == NANO)
    [line] = nano_ax.get_lines()
    assert list(line.get_xdata()) == [1.0, 2.0, 3.0] and list(line.get_ydata()) == [0.9, 0.5, 0.4]
    assert loss_curves([(NANO, "x", [])]) is None


def test_filter_and_spend_bars() -> None:
    figure = filter_rates({"owl": {"total": 100, "kept": 70, "pass_rate": 0.7, "reasons": {"invalid format": 30}},
                           "control": {"total": 100, "kept": 90, "pass_rate": 0.9, "reasons": {}}})
    assert figure is not None
    assert [p.get_width() for p in figure.axes[0].patches] == pytest.approx([0.9, 0.7])   # sorted: control, owl
    costs = pd.DataFrame({"stage": ["generate", "finetune"], "estimate_usd": [1.0, 10.0], "actual_usd": [0.8, np.nan],
                          "estimate_tokens": [2e6, 5e6], "actual_tokens": [1.5e6, 0]})
    spend = spend_by_stage(costs)
    assert spend is not None
    assert [p.get_height() for p in spend.axes[0].patches] == pytest.approx([1.0, 10.0, 0.8, 0.0])
    assert [p.get_height() for p in spend.axes[1].patches] == pytest.approx([2.0, 5.0, 1.5, 0.0])
    assert filter_rates({}) is None and spend_by_stage(costs.iloc[0:0]) is None
