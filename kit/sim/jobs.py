"""Background work of the local server: fine-tuning jobs and batches advancing through their statuses.

Each job or batch is driven by one daemon thread that first takes the object's ownership lock in the store, so two
servers sharing a store never drive the same object; a server that cannot take the lock polls until the owner
finishes or dies. Driving resumes from whatever status is on disk, so a job left `running` by a killed process is
queued and trained again by the next server that starts on the store.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kit.sim.engine import Engine, EngineError, Message, TrainEvent, TrainResult, TrainSpec
from kit.sim.faults import FaultInjector
from kit.sim.store import JsonCollection, Obj, OwnerLock, Store, new_id

log = logging.getLogger(__name__)

TERMINAL_JOB_STATUSES = frozenset({"succeeded", "failed", "cancelled"})
TERMINAL_BATCH_STATUSES = frozenset({"failed", "completed", "expired", "cancelled"})
MIN_TRAINING_EXAMPLES = 10
MESSAGE_ROLES = frozenset({"system", "developer", "user", "assistant", "tool"})
EVENT_LEVELS = {"info": "info", "warn": "warn", "warning": "warn", "error": "error"}
CHECKPOINT_METRICS = ("step", "train_loss", "train_mean_token_accuracy", "valid_loss", "valid_mean_token_accuracy",
                      "full_valid_loss", "full_valid_mean_token_accuracy")
BATCH_PROGRESS_INTERVAL_S = 0.1
SLOT_POLL_S = 0.05
RESULTS_FILENAME = "step_metrics.csv"


@dataclass(frozen=True)
class JobTiming:
    """How fast simulated jobs and batches move, and how many run at once."""

    validating_s: float = 0.05
    """Seconds a new job spends in `validating_files`."""
    queued_s: float = 0.05
    """Minimum seconds a job spends in `queued` before it may start."""
    batch_validating_s: float = 0.05
    batch_finalizing_s: float = 0.05
    max_concurrent_training: int = 2
    """Jobs training at once per server; the rest wait in `queued`."""
    max_concurrent_batches: int = 2
    ownership_poll_s: float = 0.25
    """How often a server re-checks a job or batch that another server (or thread) is driving."""
    shutdown_grace_s: float = 5.0
    """How long `stop()` waits for worker threads to let go of their jobs."""


class TrainingFileError(ValueError):
    """A training or validation file is not JSONL of `{"messages": [...]}` chat examples."""


def now() -> int:
    return int(time.time())


# training files --------------------------------------------------------------------------------------------------


def _check_message(message: Any, where: str) -> Message:
    if not isinstance(message, dict):
        raise TrainingFileError(f"{where}: each message must be an object")
    if message.get("role") not in MESSAGE_ROLES:
        raise TrainingFileError(f"{where}: message role must be one of {sorted(MESSAGE_ROLES)}")
    if not isinstance(message.get("content"), str | None):
        raise TrainingFileError(f"{where}: message content must be a string")
    if message.get("weight", 1) not in (0, 1):
        raise TrainingFileError(f"{where}: message weight must be 0 or 1")
    return message


def _parse_example(line: str, number: int) -> list[Message]:
    where = f"line {number}"
    try:
        record = json.loads(line)
    except json.JSONDecodeError as err:
        raise TrainingFileError(f"{where} is not valid JSON ({err.msg})") from None
    messages = record.get("messages") if isinstance(record, dict) else None
    if not isinstance(messages, list) or not messages:
        raise TrainingFileError(f'{where}: expected an object with a non-empty "messages" list')
    checked = [_check_message(message, where) for message in messages]
    if not any(message["role"] == "assistant" for message in checked):
        raise TrainingFileError(f"{where}: an example needs at least one assistant message")
    return checked


def parse_training_file(data: bytes) -> list[list[Message]]:
    """The examples of a fine-tuning JSONL file, or TrainingFileError naming the first bad line."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise TrainingFileError("the file is not UTF-8 text") from None
    lines = [(number, line) for number, line in enumerate(text.splitlines(), start=1) if line.strip()]
    if not lines:
        raise TrainingFileError("the file is empty")
    return [_parse_example(line, number) for number, line in lines]


# events ----------------------------------------------------------------------------------------------------------


def make_event(message: str, *, level: str = "info", data: dict[str, Any] | None = None) -> Obj:
    """A `fine_tuning.job.event`; metrics events carry their numbers in `data`."""
    return {"id": new_id("ftevent-"), "object": "fine_tuning.job.event", "created_at": now(),
            "level": EVENT_LEVELS.get(level, "info"), "message": message, "data": data or {},
            "type": "metrics" if data else "message"}


def _metrics_data(metrics: dict[str, float]) -> dict[str, float | int]:
    data: dict[str, float | int] = dict(metrics)
    step = metrics.get("step")
    if step is not None and float(step).is_integer():
        data["step"] = int(step)
    return data


def _results_csv(history: list[dict[str, float]]) -> bytes:
    """OpenAI-style result file: one row per metrics event, `step` first."""
    columns = ["step"] + sorted({key for row in history for key in row} - {"step"})
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(history)
    return buffer.getvalue().encode("utf-8")


class _Interrupted(BaseException):
    """Raised through the engine from `on_event` when a job is cancelled or the server stops.

    A BaseException so that an engine's `except Exception` does not swallow it.
    """


# the shared driver -----------------------------------------------------------------------------------------------


class _Driver:
    """One daemon thread per owned object; subclasses say what `_advance` does."""

    kind = "object"

    def __init__(self, collection: JsonCollection, terminal: frozenset[str], timing: JobTiming) -> None:
        self._collection = collection
        self._terminal = terminal
        self.timing = timing
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self._threads_lock = threading.Lock()

    def start(self) -> None:
        """Resume every object left non-terminal in the store (after a restart or by another server)."""
        self._stopping.clear()
        for obj in self._collection.all():
            if obj.get("status") not in self._terminal:
                self.submit(obj["id"])

    def submit(self, object_id: str) -> None:
        thread = threading.Thread(target=self._drive, args=(object_id,), name=f"slkit-{self.kind}-{object_id}",
                                  daemon=True)
        with self._threads_lock:
            self._threads = [t for t in self._threads if t.is_alive()] + [thread]
        thread.start()

    def request_stop(self) -> None:
        """Tell every worker to let go of its object at the next chance (a training event, a line, a pause)."""
        self._stopping.set()

    def stop(self) -> None:
        """Ask every worker to let go of its object and wait (up to `shutdown_grace_s`) for them to exit."""
        self.request_stop()
        deadline = time.monotonic() + self.timing.shutdown_grace_s
        with self._threads_lock:
            threads = list(self._threads)
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
            if thread.is_alive():
                log.warning("%s is still busy after shutdown; it keeps its ownership lock", thread.name)

    def _pause(self, seconds: float) -> bool:
        """Sleep; True if the server is stopping."""
        return self._stopping.wait(seconds) if seconds > 0 else self._stopping.is_set()

    def _status(self, object_id: str) -> str | None:
        obj = self._collection.get(object_id)
        return None if obj is None else str(obj.get("status"))

    def _live(self, object_id: str) -> bool:
        status = self._status(object_id)
        return status is not None and status not in self._terminal

    def _own(self, object_id: str) -> OwnerLock | None:
        """Take the object's lock, polling while another holder drives it; None once there is nothing to do."""
        while not self._stopping.is_set() and self._live(object_id):
            lock = self._collection.lock(object_id)
            if lock is not None:
                if self._live(object_id):
                    return lock
                lock.release()
                return None
            self._stopping.wait(self.timing.ownership_poll_s)
        return None

    def _drive(self, object_id: str) -> None:
        lock = self._own(object_id)
        if lock is None:
            return
        try:
            self._advance(object_id)
        except Exception:
            log.exception("driving %s %s failed", self.kind, object_id)
            self._crashed(object_id)
        finally:
            lock.release()

    def _advance(self, object_id: str) -> None:
        raise NotImplementedError

    def _crashed(self, object_id: str) -> None:
        raise NotImplementedError


# fine-tuning jobs ------------------------------------------------------------------------------------------------


class JobRunner(_Driver):
    """Moves jobs validating_files → queued → running → succeeded / failed / cancelled, training via the engine."""

    kind = "job"

    def __init__(self, engine: Engine, store: Store, timing: JobTiming, faults: FaultInjector) -> None:
        super().__init__(store.jobs, TERMINAL_JOB_STATUSES, timing)
        self.engine = engine
        self.store = store
        self.faults = faults
        self._slots = threading.BoundedSemaphore(timing.max_concurrent_training)

    # state changes (each one atomic under the store lock, events written with it) --------------------------------

    def _change(self, job_id: str, allowed: frozenset[str], changes: Obj, events: list[Obj]) -> Obj | None:
        def apply(job: Obj) -> Obj | None:
            if job.get("status") not in allowed:
                return None
            for event in events:
                self.store.add_event(job_id, event)
            return {**job, **changes}

        return self.store.jobs.update(job_id, apply)

    def _move(self, job_id: str, old: str, new: str, message: str) -> bool:
        return self._change(job_id, frozenset({old}), {"status": new}, [make_event(message)]) is not None

    def fail(self, job_id: str, code: str, message: str, param: str | None = None) -> Obj | None:
        """Mark a non-terminal job failed with an OpenAI-shaped `error`."""
        live = frozenset({"validating_files", "queued", "running"})
        changes = {"status": "failed", "finished_at": now(), "estimated_finish": None,
                   "error": {"code": code, "message": message, "param": param}}
        return self._change(job_id, live, changes, [make_event(f"Fine-tuning job failed: {message}", level="error")])

    def cancel(self, job_id: str) -> Obj | None:
        """Cancel a non-terminal job; None if it is already finished."""
        live = frozenset({"validating_files", "queued", "running"})
        changes = {"status": "cancelled", "finished_at": now(), "estimated_finish": None}
        return self._change(job_id, live, changes, [make_event("Fine-tuning job cancelled")])

    def _crashed(self, job_id: str) -> None:
        self.fail(job_id, "server_error", "The job failed due to an internal error in the simulated lab.")

    # driving -------------------------------------------------------------------------------------------------

    def _advance(self, job_id: str) -> None:
        if self._status(job_id) == "running":
            self._move(job_id, "running", "queued", "Job was interrupted by a server restart; queued again")
        if self._status(job_id) == "validating_files":
            if self._pause(self.timing.validating_s):
                return
            self._move(job_id, "validating_files", "queued", "Files validated, moving job to queued state")
        if self._status(job_id) == "queued" and not self._pause(self.timing.queued_s):
            self._run_in_slot(job_id)

    def _run_in_slot(self, job_id: str) -> None:
        while not self._slots.acquire(timeout=SLOT_POLL_S):
            if self._stopping.is_set() or self._status(job_id) != "queued":
                return
        try:
            if self._move(job_id, "queued", "running", "Fine-tuning job started"):
                self._train(job_id)
        finally:
            self._slots.release()

    def _spec(self, job: Obj) -> TrainSpec:
        data = self.store.file_bytes(job["training_file"])
        if data is None:
            raise TrainingFileError(f"training file {job['training_file']} no longer exists")
        hyper = job.get("hyperparameters") or {}

        def value(name: str) -> Any:
            return None if hyper.get(name) in (None, "auto") else hyper[name]

        return TrainSpec(job_id=job["id"], base_model=job["model"], examples=parse_training_file(data),
                         n_epochs=value("n_epochs"), batch_size=value("batch_size"),
                         learning_rate_multiplier=value("learning_rate_multiplier"), seed=job.get("seed"),
                         suffix=job.get("user_provided_suffix"))

    def _train(self, job_id: str) -> None:
        if self.faults.job_fails():
            self.fail(job_id, "server_error", "The job failed due to an internal server error (injected fault).")
            return
        job = self.store.jobs.get(job_id) or {}
        try:
            spec = self._spec(job)
        except TrainingFileError as err:
            self.fail(job_id, "invalid_training_file", f"Invalid training file: {err}", "training_file")
            return
        history: list[dict[str, float]] = []
        try:
            result = self.engine.train(spec, lambda event: self._on_event(job_id, event, history))
        except _Interrupted:
            return
        except EngineError as err:
            self.fail(job_id, err.code, str(err), err.param)
            return
        self._succeed(job, result, history)

    def _on_event(self, job_id: str, event: TrainEvent, history: list[dict[str, float]]) -> None:
        if self._stopping.is_set() or self._status(job_id) != "running":
            raise _Interrupted()
        if event.metrics:
            history.append(dict(event.metrics))
        data = _metrics_data(event.metrics) if event.metrics else None
        self.store.add_event(job_id, make_event(event.message, level=event.level, data=data))

    def _checkpoint(self, job: Obj, model: str, history: list[dict[str, float]]) -> Obj:
        last = history[-1] if history else {}
        step = int(last.get("step", len(history)))
        metrics = {key: float(last[key]) for key in CHECKPOINT_METRICS if key in last}
        return {"id": new_id("ftckpt_"), "object": "fine_tuning.job.checkpoint", "created_at": now(),
                "fine_tuned_model_checkpoint": f"{model}:ckpt-step-{step}", "fine_tuning_job_id": job["id"],
                "metrics": metrics, "step_number": step}

    def _succeed(self, job: Obj, result: TrainResult, history: list[dict[str, float]]) -> None:
        results_file = self.store.create_file(_results_csv(history), RESULTS_FILENAME, "fine-tune-results")
        checkpoint = self._checkpoint(job, result.fine_tuned_model, history)
        self.store.put_checkpoints(job["id"], [checkpoint])
        hyper = {**(job.get("hyperparameters") or {}), **result.hyperparameters}
        method = {"type": "supervised", "supervised": {"hyperparameters": hyper}}
        changes = {"status": "succeeded", "fine_tuned_model": result.fine_tuned_model, "finished_at": now(),
                   "trained_tokens": result.trained_tokens, "result_files": [results_file["id"]],
                   "hyperparameters": hyper, "method": method, "estimated_finish": None}
        events = [make_event(f"Checkpoint created at step {checkpoint['step_number']}"),
                  make_event(f"New fine-tuned model created: {result.fine_tuned_model}"),
                  make_event("The job has successfully completed")]
        self._change(job["id"], frozenset({"running"}), changes, events)


# batches ---------------------------------------------------------------------------------------------------------

BatchHandler = Callable[[str, Obj], tuple[int, Obj]]
"""Answers one batch line: (url, body) -> (HTTP status, response body)."""


@dataclass(frozen=True)
class BatchLine:
    custom_id: str
    url: str
    body: Obj


def _batch_error(code: str, message: str, line: int | None = None, param: str | None = None) -> Obj:
    return {"code": code, "message": message, "line": line, "param": param}


def _parse_batch_line(text: str, number: int, endpoint: str) -> BatchLine | Obj:
    try:
        record = json.loads(text)
    except json.JSONDecodeError:
        return _batch_error("invalid_json_line", f"Line {number} is not valid JSON.", number)
    if not isinstance(record, dict) or not isinstance(record.get("custom_id"), str):
        return _batch_error("missing_required_parameter", "Each line needs a string custom_id.", number, "custom_id")
    if record.get("method") != "POST":
        return _batch_error("invalid_request", 'The method must be "POST".', number, "method")
    if record.get("url") != endpoint:
        return _batch_error("mismatched_endpoint", f"The url must be the batch endpoint {endpoint}.", number, "url")
    if not isinstance(record.get("body"), dict):
        return _batch_error("invalid_request", "The body must be an object.", number, "body")
    return BatchLine(record["custom_id"], record["url"], record["body"])


def parse_batch_input(data: bytes, endpoint: str) -> tuple[list[BatchLine], list[Obj]]:
    """The requests of a batch input file, and the validation errors (any error fails the whole batch)."""
    lines: list[BatchLine] = []
    errors: list[Obj] = []
    seen: set[str] = set()
    text = data.decode("utf-8", errors="replace")
    for number, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        parsed = _parse_batch_line(raw, number, endpoint)
        if isinstance(parsed, dict):
            errors.append(parsed)
        elif parsed.custom_id in seen:
            errors.append(_batch_error("duplicate_custom_id", "custom_id values must be unique.", number, "custom_id"))
        else:
            seen.add(parsed.custom_id)
            lines.append(parsed)
    if not lines and not errors:
        errors.append(_batch_error("empty_file", "The input file has no requests."))
    return lines, errors


def _result_line(line: BatchLine, status: int, body: Obj) -> Obj:
    response = {"status_code": status, "request_id": new_id("req_"), "body": body}
    return {"id": new_id("batch_req_"), "custom_id": line.custom_id, "response": response, "error": None}


def _jsonl(records: list[Obj]) -> bytes:
    return b"".join(json.dumps(record, ensure_ascii=False).encode("utf-8") + b"\n" for record in records)


def _usage(outputs: list[Obj]) -> Obj:
    usages = [record["response"]["body"].get("usage") or {} for record in outputs]
    prompt = sum(int(u.get("prompt_tokens", 0)) for u in usages)
    completion = sum(int(u.get("completion_tokens", 0)) for u in usages)
    return {"input_tokens": prompt, "input_tokens_details": {"cached_tokens": 0}, "output_tokens": completion,
            "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": prompt + completion}


class BatchRunner(_Driver):
    """Moves batches validating → in_progress → finalizing → completed (or failed / cancelled)."""

    kind = "batch"

    def __init__(self, store: Store, timing: JobTiming, handle: BatchHandler) -> None:
        super().__init__(store.batches, TERMINAL_BATCH_STATUSES, timing)
        self.store = store
        self.handle = handle
        self._slots = threading.BoundedSemaphore(timing.max_concurrent_batches)

    def _set(self, batch_id: str, allowed: frozenset[str], changes: Obj) -> Obj | None:
        return self.store.batches.update(batch_id, lambda b: {**b, **changes} if b["status"] in allowed else None)

    def cancel(self, batch_id: str) -> Obj | None:
        """Ask a running batch to stop; it becomes `cancelling`, then `cancelled` with partial output."""
        live = frozenset({"validating", "in_progress", "finalizing"})
        return self._set(batch_id, live, {"status": "cancelling", "cancelling_at": now()})

    def _crashed(self, batch_id: str) -> None:
        error = _batch_error("server_error", "The batch failed due to an internal error in the simulated lab.")
        live = frozenset({"validating", "in_progress", "finalizing", "cancelling"})
        self._set(batch_id, live, {"status": "failed", "failed_at": now(), "errors": {"object": "list", "data": [error]}})

    def _advance(self, batch_id: str) -> None:
        if self._status(batch_id) == "validating" and self._pause(self.timing.batch_validating_s):
            return
        batch = self.store.batches.get(batch_id) or {}
        if batch.get("status") == "cancelling":
            self._set(batch_id, frozenset({"cancelling"}), {"status": "cancelled", "cancelled_at": now()})
            return
        lines = self._validate(batch)
        if lines is not None:
            while not self._slots.acquire(timeout=SLOT_POLL_S):
                if self._stopping.is_set():
                    return
            try:
                self._process(batch_id, lines)
            finally:
                self._slots.release()

    def _validate(self, batch: Obj) -> list[BatchLine] | None:
        data = self.store.file_bytes(batch["input_file_id"])
        lines: list[BatchLine] = []
        if data is None:
            errors = [_batch_error("invalid_file", "The input file no longer exists.", None, "input_file_id")]
        else:
            lines, errors = parse_batch_input(data, batch["endpoint"])
        if errors:
            changes = {"status": "failed", "failed_at": now(), "errors": {"object": "list", "data": errors}}
            self._set(batch["id"], frozenset({"validating"}), changes)
            return None
        model = lines[0].body.get("model")
        changes = {"status": "in_progress", "in_progress_at": batch.get("in_progress_at") or now(),
                   "model": model if isinstance(model, str) else None,
                   "request_counts": {"total": len(lines), "completed": 0, "failed": 0}}
        moved = self._set(batch["id"], frozenset({"validating", "in_progress", "finalizing"}), changes)
        return lines if moved else None

    def _process(self, batch_id: str, lines: list[BatchLine]) -> None:
        outputs: list[Obj] = []
        failures: list[Obj] = []
        reported = time.monotonic()
        for line in lines:
            if self._stopping.is_set():
                return
            if self._status(batch_id) != "in_progress":
                break
            status, body = self.handle(line.url, line.body)
            (outputs if status == 200 else failures).append(_result_line(line, status, body))
            if time.monotonic() - reported >= BATCH_PROGRESS_INTERVAL_S:
                reported = time.monotonic()
                self._counts(batch_id, len(lines), outputs, failures)
        self._finish(batch_id, len(lines), outputs, failures)

    def _counts(self, batch_id: str, total: int, outputs: list[Obj], failures: list[Obj]) -> None:
        counts = {"total": total, "completed": len(outputs), "failed": len(failures)}
        self._set(batch_id, frozenset({"in_progress"}), {"request_counts": counts})

    def _finish(self, batch_id: str, total: int, outputs: list[Obj], failures: list[Obj]) -> None:
        if self._status(batch_id) == "in_progress":
            self._counts(batch_id, total, outputs, failures)
            self._set(batch_id, frozenset({"in_progress"}), {"status": "finalizing", "finalizing_at": now()})
            if self._pause(self.timing.batch_finalizing_s):
                return
        files = self._write_results(batch_id, outputs, failures)
        counts = {"total": total, "completed": len(outputs), "failed": len(failures)}
        done = {**files, "request_counts": counts, "usage": _usage(outputs)}
        if self._set(batch_id, frozenset({"finalizing"}), {**done, "status": "completed", "completed_at": now()}):
            return
        self._set(batch_id, frozenset({"cancelling"}), {**done, "status": "cancelled", "cancelled_at": now()})

    def _write_results(self, batch_id: str, outputs: list[Obj], failures: list[Obj]) -> Obj:
        output = self.store.create_file(_jsonl(outputs), f"{batch_id}_output.jsonl", "batch_output")
        error = self.store.create_file(_jsonl(failures), f"{batch_id}_error.jsonl", "batch_output") if failures else None
        return {"output_file_id": output["id"], "error_file_id": error["id"] if error else None}
