"""The ledger: migrations, the sample cache, job records, usage; a corrupt file is a clear error."""

import sqlite3

import pytest

from kit.errors import LedgerError
from kit.ledger import LEDGER_FILE, MIGRATIONS, Ledger, Usage


def test_opens_in_wal_with_current_schema(tmp_path):
    ledger = Ledger.open(tmp_path)
    ledger.close()
    conn = sqlite3.connect(tmp_path / LEDGER_FILE)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)


def test_samples_and_usage_are_stored_together_and_survive_reopen(tmp_path):
    ledger = Ledger.open(tmp_path)
    rows = [("fp:0", 3, 0, "1, 2, 3"), ("fp:1", 3, 1, "4, 5")]
    ledger.add_samples("generate", "owl", "m", {"model": "m"}, rows, "req_1",
                       Usage("lab", input_tokens=40, output_tokens=9, usd=0.5))
    ledger.add_samples("generate", "owl", "m", {"model": "m"}, rows, "req_1", Usage("lab", usd=0.0))  # duplicate keys
    ledger.close()
    again = Ledger.open(tmp_path)
    got = again.samples("generate", "owl")
    assert {k: s.completion for k, s in got.items()} == {"fp:0": "1, 2, 3", "fp:1": "4, 5"}
    assert again.samples("generate", "control") == {}
    totals = again.usage()
    assert (totals.input_tokens, totals.output_tokens, totals.usd) == (40, 9, 0.5)
    assert again.sample_count() == 2


def test_job_lifecycle_records(tmp_path):
    ledger = Ledger.open(tmp_path)
    ledger.record_job_intent("c1", "lab", "base", "file-1", {"slkit_cell": "c1"}, {"n_epochs": 10})
    ledger.record_job_intent("c1", "lab", "base", "file-2", {"slkit_cell": "other"}, {})  # intent is written once
    job = ledger.job("c1")
    assert job.state == "intent" and job.job_id is None and job.training_file == "file-1"
    ledger.update_job("c1", state="created", job_id="ftjob-1", status="queued")
    ledger.update_job("c1", state="succeeded", fine_tuned_model="ft:base:x", trained_tokens=123,
                      events=[{"message": "done"}])
    job = ledger.job("c1")
    assert (job.state, job.job_id, job.fine_tuned_model, job.trained_tokens) == ("succeeded", "ftjob-1", "ft:base:x", 123)
    assert job.events == [{"message": "done"}] and job.metadata == {"slkit_cell": "c1"}
    with pytest.raises(ValueError):
        ledger.update_job("c1", colour="red")


def test_corrupt_ledger_is_a_one_line_error(tmp_path):
    (tmp_path / LEDGER_FILE).write_bytes(b"this is not a database" * 100)
    with pytest.raises(LedgerError) as info:
        Ledger.open(tmp_path)
    assert "move the run folder aside" in str(info.value) and "\n" not in str(info.value)
