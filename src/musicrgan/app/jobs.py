"""Jobs: every long action of the studio (convert, synth, train, generate, reconstruct,
evaluate, compare) is the musicrgan command line run in a child process, recorded in SQLite
under the home folder so that a restarted server still lists finished jobs and marks the
ones it was running when it stopped as interrupted.

Jobs run in lanes: `train` (one worker: training uses every core) and `work` (a small pool
for generation and the like). Each lane takes at most `workers + bound` jobs at a time; past
that, `submit` raises Busy (the API's 429), and the server keeps serving."""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..locks import folder_lock
from .home import Home

ACTIVE = ("queued", "running")
FINISHED = ("done", "failed", "cancelled", "interrupted")
CANCEL_GRACE_SECONDS = 20.0  # after SIGINT, a training job commits its epoch; then SIGKILL
LOG_TAIL_BYTES = 16384
PERCENT = re.compile(r"(\d{1,3})%\|")  # a tqdm bar's "NN%|"
ERROR_LINE = re.compile(r"^musicrgan(?: [a-z]+)?: (?!warning:)(?:error: )?(.*)$")  # the CLI's one line


class Busy(Exception):
    """The lane's queue is full (429)."""


@dataclass(frozen=True)
class Lane:
    workers: int
    bound: int  # jobs that may wait beside the running ones


DEFAULT_LANES = {"train": Lane(1, 4), "work": Lane(2, 8)}

SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY, kind TEXT NOT NULL, lane TEXT NOT NULL, target TEXT,
    argv TEXT NOT NULL, params TEXT NOT NULL, status TEXT NOT NULL,
    created REAL NOT NULL, started REAL, finished REAL, pid INTEGER, exit_code INTEGER,
    error TEXT, result TEXT)
"""


class JobStore:
    """The jobs table. One connection, used under a lock (SQLite in WAL mode)."""

    def __init__(self, path: Path):
        self.lock = threading.Lock()
        self.db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self.db.row_factory = sqlite3.Row
        with self.lock:
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute(SCHEMA)

    def insert(self, job: dict) -> None:
        with self.lock:
            self.db.execute(
                "INSERT INTO jobs (id, kind, lane, target, argv, params, status, created) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (job["id"], job["kind"], job["lane"], job["target"], json.dumps(job["argv"]),
                 json.dumps(job["params"]), job["status"], job["created"]))

    def update(self, job_id: str, **fields) -> None:
        for key in ("params", "result"):
            if key in fields and fields[key] is not None:
                fields[key] = json.dumps(fields[key])
        names = ", ".join(f"{k} = ?" for k in fields)
        with self.lock:
            self.db.execute(f"UPDATE jobs SET {names} WHERE id = ?", (*fields.values(), job_id))

    def get(self, job_id: str) -> dict | None:
        with self.lock:
            row = self.db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return _job(row) if row else None

    def recent(self, limit: int = 50, target: str | None = None) -> list[dict]:
        query, args = "SELECT * FROM jobs", ()
        if target is not None:
            query, args = query + " WHERE target = ?", (target,)
        with self.lock:
            rows = self.db.execute(query + " ORDER BY created DESC LIMIT ?",
                                   (*args, limit)).fetchall()
        return [_job(r) for r in rows]

    def interrupt_leftovers(self) -> int:
        """Jobs a previous server was running or holding when it stopped: interrupted."""
        with self.lock:
            cursor = self.db.execute(
                "UPDATE jobs SET status = 'interrupted', finished = ?, error = ? "
                "WHERE status IN ('queued', 'running')",
                (time.time(), "the server stopped before this job ended; a run keeps its last "
                              "complete epoch: continue it to train on"))
        return cursor.rowcount


def _job(row: sqlite3.Row) -> dict:
    job = dict(row)
    job["argv"] = json.loads(job["argv"])
    job["params"] = json.loads(job["params"])
    job["result"] = json.loads(job["result"]) if job["result"] else None
    return job


class Jobs:
    """Queues, workers and child processes. `collect(job)` gives a finished job's result;
    `on_start(job)` the params to note when it starts (a training run's epochs so far);
    `progress(job)` a running job's share done, where its kind knows (else a tqdm bar's)."""

    def __init__(self, home: Home, *, lanes: dict[str, Lane] | None = None,
                 collect: Callable[[dict], dict] | None = None,
                 on_start: Callable[[dict], dict] | None = None,
                 progress: Callable[[dict], float | None] | None = None):
        self.home = home
        self.lanes = lanes or DEFAULT_LANES
        self.collect = collect or (lambda job: {})
        self.on_start = on_start or (lambda job: {})
        self.progress = progress or (lambda job: None)
        # one server per home: a second would take the first one's jobs for lost ones
        self.held = ExitStack()
        self.held.enter_context(folder_lock(home.studio, "serving"))
        self.store = JobStore(home.database)
        self.interrupted_at_start = self.store.interrupt_leftovers()
        self.lock = threading.Lock()
        self.active = {lane: 0 for lane in self.lanes}
        self.queues = {lane: queue.Queue() for lane in self.lanes}
        self.processes: dict[str, subprocess.Popen] = {}
        self.cancelling: set[str] = set()
        self.stopping = False
        self.threads = [threading.Thread(target=self._work, args=(lane,), daemon=True,
                                         name=f"jobs-{lane}-{i}")
                        for lane, spec in self.lanes.items() for i in range(spec.workers)]
        for thread in self.threads:
            thread.start()

    def submit(self, kind: str, lane: str, argv: list, *, target: str | None = None,
               params: dict | None = None, job_id: str | None = None) -> dict:
        spec = self.lanes[lane]
        with self.lock:
            if self.stopping:
                raise Busy("the server is stopping")
            if self.active[lane] >= spec.workers + spec.bound:
                raise Busy(f"{self.active[lane]} {lane} jobs are running or waiting; "
                           "try again when one has finished")
            self.active[lane] += 1
        job = {"id": job_id or new_job_id(), "kind": kind, "lane": lane, "target": target,
               "argv": [str(a) for a in argv], "params": params or {}, "status": "queued",
               "created": time.time()}
        self.store.insert(job)
        self.queues[lane].put(job["id"])
        return self.store.get(job["id"])

    def _work(self, lane: str) -> None:
        while True:
            job_id = self.queues[lane].get()
            if job_id is None:
                return
            try:
                self._run(job_id)
            except Exception as exc:  # a job's failure never stops its worker
                self.store.update(job_id, status="failed", finished=time.time(),
                                  error=f"the studio could not run this job: {exc}")
            finally:
                with self.lock:
                    self.active[lane] -= 1

    def _run(self, job_id: str) -> None:
        with self.lock:
            job = self.store.get(job_id)
            if job is None or job["status"] != "queued" or self.stopping:
                return
            self.store.update(job_id, status="running", started=time.time())
        params = {**job["params"], **self.on_start(job)}
        self.store.update(job_id, params=params)
        log = self.home.logs / f"{job_id}.log"
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "TF_CPP_MIN_LOG_LEVEL": "3"}
        with open(log, "ab") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", "musicrgan.app.child", str(os.getpid()), *job["argv"]],
                cwd=self.home.root, stdout=out, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, env=env, start_new_session=True)
        with self.lock:
            self.processes[job_id] = process
            self.store.update(job_id, pid=process.pid)
            if job_id in self.cancelling:
                self._interrupt(process)
        code = process.wait()
        with self.lock:
            self.processes.pop(job_id, None)
            cancelled = job_id in self.cancelling
            self.cancelling.discard(job_id)
        if code == 0 and not cancelled:
            status, error = "done", None
        elif cancelled:
            status, error = "cancelled", "cancelled"
        elif self.stopping:
            status, error = "interrupted", "the server stopped before this job ended"
        else:
            status, error = "failed", failure_reason(log, code)
        result = None
        try:
            result = self.collect({**job, "params": params, "status": status})
        except Exception as exc:  # a result that cannot be read is the job's failure
            status, error = "failed", f"finished, but its result could not be read: {exc}"
        self.store.update(job_id, status=status, finished=time.time(), exit_code=code,
                          error=error, result=result)

    def cancel(self, job_id: str) -> dict | None:
        """A queued job is dropped; a running one gets SIGINT (training commits its epoch and
        stops; the run stays resumable), then SIGKILL after a grace period."""
        with self.lock:
            job = self.store.get(job_id)
            if job is None:
                return None
            if job["status"] == "queued":
                self.store.update(job_id, status="cancelled", finished=time.time(),
                                  error="cancelled before it started")
            elif job["status"] == "running":
                self.cancelling.add(job_id)
                process = self.processes.get(job_id)
                if process is not None:
                    self._interrupt(process)
        return self.store.get(job_id)

    def _interrupt(self, process: subprocess.Popen) -> None:
        _signal_group(process, signal.SIGINT)

        def kill_later():
            try:
                process.wait(CANCEL_GRACE_SECONDS)
            except subprocess.TimeoutExpired:
                _signal_group(process, signal.SIGKILL)
        threading.Thread(target=kill_later, daemon=True).start()

    def shutdown(self, grace: float = 10.0) -> None:
        """Stop taking jobs; interrupt the running ones (their runs keep their last complete
        epoch) and mark them and the queued ones interrupted."""
        with self.lock:
            self.stopping = True
            running = list(self.processes.values())
        for process in running:
            _signal_group(process, signal.SIGINT)
        deadline = time.time() + grace
        for process in running:
            try:
                process.wait(max(0.0, deadline - time.time()))
            except subprocess.TimeoutExpired:
                _signal_group(process, signal.SIGKILL)
        for q in self.queues.values():
            q.put(None)
        self.store.interrupt_leftovers()
        self.held.close()

    def view(self, job: dict) -> dict:
        """A job as the API shows it: its record, log tail and progress."""
        log = self.home.logs / f"{job['id']}.log"
        tail = log_tail(log)
        shown = {k: v for k, v in job.items() if k not in ("argv", "pid")}
        shown["command"] = "musicrgan " + " ".join(job["argv"])
        shown["log"] = tail
        shown["progress"] = 1.0 if job["status"] == "done" else None
        if job["status"] == "running":
            shown["progress"] = self.progress(job)
            bars = PERCENT.findall("\n".join(tail[-3:]))
            if shown["progress"] is None and bars:
                shown["progress"] = int(bars[-1]) / 100
        return shown


def new_job_id() -> str:
    return uuid.uuid4().hex[:12]


def _signal_group(process: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(process.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def log_tail(path: Path, lines: int = 30) -> list[str]:
    """The last lines of a job's log (progress bars' carriage returns as line ends)."""
    try:
        with open(path, "rb") as f:
            f.seek(max(0, path.stat().st_size - LOG_TAIL_BYTES))
            text = f.read().decode("utf-8", "replace")
    except OSError:
        return []
    return [ln.rstrip() for ln in re.split(r"[\r\n]+", text) if ln.strip()][-lines:]


def failure_reason(log: Path, code: int) -> str:
    """The command line's one-line error where it printed one, else the last line."""
    tail = log_tail(log, 200)
    errors = [m.group(1) for m in map(ERROR_LINE.match, tail) if m]
    if errors:
        return errors[-1].strip()
    if code < 0:
        return f"killed by signal {-code}"
    return tail[-1] if tail else f"exit status {code}"
