"""One experiment file for the five provider routes (only `provider:` changes; the runs themselves are in
test_routes_cli.py); a rerun sends nothing; deployments are billed by the hour."""

from __future__ import annotations

from pathlib import Path

import pytest

from kit.ledger import Ledger
from kit.sim.server import LocalServer
from routes_common import ROUTES, experiment, run_inline, server  # noqa: F401 (fixture)

CELLS = 4  # 2 teachers x 2 student models x 1 seed


def test_the_route_is_switched_by_provider_alone(tmp_path: Path, server: LocalServer) -> None:
    files = [experiment(tmp_path, server, route, name=f"{route}.yaml").read_text().splitlines() for route in ROUTES]
    for lines in files[1:]:
        changed = [(a, b) for a, b in zip(files[0], lines, strict=True) if a != b]
        assert changed and all("provider:" in a and "provider:" in b for a, b in changed)


def test_a_rerun_sends_nothing(tmp_path: Path, server: LocalServer) -> None:
    path = experiment(tmp_path, server, "fireworks")
    run_inline(path, tmp_path / "data")
    before = server.stats.requests_total
    run_inline(path, tmp_path / "data")
    assert server.stats.requests_total == before


def test_hosting_hours_are_billed(tmp_path: Path, server: LocalServer, monkeypatch: pytest.MonkeyPatch) -> None:
    import yaml

    from kit.catalog import CATALOG_ENV

    catalog = yaml.safe_load((Path(__file__).resolve().parents[1] / "kit/catalog/models.yaml").read_text())
    for model in catalog["models"]:
        if model["id"].startswith("sim-"):
            model["providers"]["sim"]["deployment"] = {"required": True, "hosting_usd_per_hour": 3600.0}
    priced = tmp_path / "hosting.yaml"
    priced.write_text(yaml.safe_dump(catalog))
    monkeypatch.setenv(CATALOG_ENV, str(priced))
    run_dir = run_inline(experiment(tmp_path, server, "azure"), tmp_path / "data",
                         ("generate", "filter", "finetune", "evaluate"))
    ledger = Ledger.open(run_dir)
    try:
        hosted = [d.hosting_usd for d in ledger.deployments()]
        assert len(hosted) == CELLS and all(usd > 0 for usd in hosted)  # $1 per second deployed
        assert ledger.usage("evaluate").usd == pytest.approx(sum(hosted))
    finally:
        ledger.close()
