"""`musicrgan convert`: audio files of any format and rate → a corpus folder of mono wavs.

Files are decoded in a process pool (one decode per core). Each wav is written under a
temporary name and renamed when complete; only then is its manifest line appended. A killed
run therefore leaves no wav that looks whole without being whole, and no manifest line
without its file; running the same command again converts what is missing.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
from tqdm import tqdm

from .. import audio
from ..locks import folder_lock
from .manifest import (FAILURES, MANIFEST, append_jsonl, read_jsonl, rewrite_jsonl, shard_for,
                       split_for)

SILENCE_PEAK = 1e-4  # -80 dBFS: quieter than this everywhere is treated as silence


@dataclass(frozen=True)
class Job:
    source: Path          # absolute source path
    relative: str         # path relative to its input root (split hashing, output naming)
    split: str | None     # forced split, or None to hash `relative`
    size: int
    mtime: float


@dataclass
class Summary:
    converted: int = 0
    unchanged: int = 0
    failed: int = 0
    previously_failed: int = 0
    seconds: dict | None = None

    def line(self, out: Path) -> str:
        secs = self.seconds or {}
        parts = [f"converted {self.converted}", f"unchanged {self.unchanged}",
                 f"failed {self.failed + self.previously_failed}"]
        audio_part = ", ".join(f"{s / 60:.1f} min in {k}" for k, s in sorted(secs.items()))
        text = "; ".join(parts)
        if audio_part:
            text += f" | corpus: {audio_part}"
        if self.failed + self.previously_failed:
            text += f" | reasons in {out / FAILURES}"
        return text


def find_jobs(sources: list[Path], split: str | None
              ) -> tuple[list[Job], list[tuple[Path, str, str]]]:
    """Every file under the inputs, as jobs; names that are not audio files become failures
    (path, reason, relative path)."""
    jobs, skipped = [], []
    prefix_roots = len(sources) > 1
    for root in sources:
        root = Path(root)
        if root.is_file():
            files, base = [root], root.parent
        elif root.is_dir():
            files = sorted(p for p in root.rglob("*") if p.is_file())
            base = root
        else:
            raise FileNotFoundError(f"input not found: {root}")
        for path in files:
            rel = path.relative_to(base).as_posix()
            if any(part.startswith(".") for part in Path(rel).parts):
                continue  # hidden files and folders (.DS_Store, .git, our own temporaries)
            if prefix_roots and root.is_dir():
                rel = f"{root.resolve().name}/{rel}"
            if path.suffix.lower() not in audio.AUDIO_EXTENSIONS:
                skipped.append((path.resolve(),
                                f"not an audio file ({path.suffix or 'no extension'})", rel))
                continue
            st = path.stat()
            jobs.append(Job(path.resolve(), rel, split, st.st_size, st.st_mtime))
    return jobs, skipped


def _output_names(jobs: list[Job]) -> dict[Job, str]:
    """`a/b.mp3` → `a/b.wav`; when two sources would share a name, the extension is kept."""
    wanted: dict[str, list[Job]] = {}
    for job in jobs:
        wanted.setdefault(str(Path(job.relative).with_suffix(".wav")), []).append(job)
    names = {}
    for name, group in wanted.items():
        for job in group:
            names[job] = name if len(group) == 1 else job.relative + ".wav"
    return names


def convert_one(source: str, target: str, rate: int, min_seconds: float) -> dict:
    """Decode, check and write one file. Runs in a worker process; never raises for bad input."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = audio.temporary_file(target, target.stem)
    try:
        try:
            audio.transcode(source, tmp, rate)
            samples, _ = sf.read(tmp, dtype="float32")
        except audio.AudioError as exc:
            return {"error": str(exc)}
        except Exception as exc:  # a decoder crash on hostile input is still just a bad file
            return {"error": f"{type(exc).__name__}: {exc}"[:200]}
        seconds = samples.size / rate
        if samples.size == 0:
            return {"error": "no audio frames"}
        if seconds < min_seconds:
            return {"error": f"too short ({seconds:.2f} s, below the minimum of {min_seconds:g} s)"}
        if float(np.max(np.abs(samples))) < SILENCE_PEAK:
            return {"error": "silent (peak below -80 dBFS)"}
        os.replace(tmp, target)
        return {"seconds": round(seconds, 4)}
    finally:
        Path(tmp).unlink(missing_ok=True)


def _init_worker(cores: list[int], counter) -> None:
    """Decoders (mpg123 inside libsndfile) print notes about damaged frames to stderr from C;
    the failure reasons we record say what matters, so the workers' stderr is dropped.

    Each worker is pinned to one core, and so is the ffmpeg it starts: ffmpeg's CLI runs
    demuxer, decoder, filters and muxer on separate threads that hand every packet over
    through futexes, which costs more than it gains once every core already has a file.

    Ctrl-C is the parent's to handle (it cancels the queued files and waits for the ones in
    hand), so workers ignore it. A worker exits as soon as its parent is gone: a worker
    outliving a killed convert would go on holding the corpus folder's lock (inherited by
    fork), and the next convert would find the folder busy.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    parent = os.getppid()

    def exit_with_parent():
        while os.getppid() == parent:
            time.sleep(0.2)
        os._exit(1)
    threading.Thread(target=exit_with_parent, daemon=True).start()
    if cores and hasattr(os, "sched_setaffinity"):
        with counter.get_lock():
            slot = counter.value
            counter.value += 1
        os.sched_setaffinity(0, {cores[slot % len(cores)]})
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    os.close(devnull)


def remove_stale_temporaries(folder: Path) -> None:
    """The hidden temporaries a killed convert or merge left behind."""
    if folder.is_dir():
        for tmp in folder.rglob(".*.tmp"):
            tmp.unlink(missing_ok=True)


def convert(train_sources: list[Path], out: Path, *, rate: int = 16000,
            test_sources: list[Path] | None = None, test_fraction: float = 0.1,
            min_seconds: float = 1.0, jobs: int | None = None, retry_failed: bool = False,
            flat_split: str | None = None, progress: bool = True,
            shard: tuple[int, int] | None = None) -> Summary:
    """Convert inputs into the corpus folder `out`.

    Without `test_sources`, each file's split is a hash of its relative path
    (`test_fraction` of files go to test). `flat_split` writes every wav straight into `out`
    (the original convert_audio.py layout: one folder per split). `shard` (i, n) converts
    only the files whose relative path hashes to shard i of n (1-based), under the names and
    splits a whole convert would give them: n machines convert one collection, and
    `corpus merge` joins their folders.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    # two converts into one folder would both convert everything: the second is refused
    with folder_lock(out, "converting into"):
        return _convert_locked(train_sources, out, rate=rate, test_sources=test_sources,
                               test_fraction=test_fraction, min_seconds=min_seconds, jobs=jobs,
                               retry_failed=retry_failed, flat_split=flat_split,
                               progress=progress, shard=shard)


def _convert_locked(train_sources, out: Path, *, rate, test_sources, test_fraction,
                    min_seconds, jobs, retry_failed, flat_split, progress, shard) -> Summary:
    remove_stale_temporaries(out)
    if test_sources:
        found = [find_jobs(train_sources, "train"), find_jobs(test_sources, "test")]
    else:
        found = [find_jobs(train_sources, flat_split)]
    all_jobs = [j for js, _ in found for j in js]
    not_audio = [(path, reason) for _, sk in found for path, reason, rel in sk
                 if shard is None or shard_for(rel, shard[1]) == shard[0]]

    manifest_path, failures_path = out / MANIFEST, out / FAILURES
    done = {}
    for entry in read_jsonl(manifest_path):
        if "source" in entry and (out / entry.get("path", "")).is_file():
            done[entry["source"]] = entry
    failed_before = {e["source"]: e for e in read_jsonl(failures_path) if "source" in e}

    names = _output_names(all_jobs)  # of every file, sharded or not: the same names
    summary = Summary()
    todo = []
    for job in all_jobs:
        if shard is not None and shard_for(job.relative, shard[1]) != shard[0]:
            continue
        split = job.split or split_for(job.relative, test_fraction)
        rel_out = names[job] if flat_split else f"{split}/{names[job]}"
        key = str(job.source)
        prev = done.get(key)
        if prev and prev.get("source_size") == job.size and prev.get("source_mtime") == job.mtime \
                and prev.get("path") == rel_out and prev.get("rate") == rate:
            summary.unchanged += 1
            continue
        prev_fail = failed_before.get(key)
        if (prev_fail and not retry_failed and prev_fail.get("source_size") == job.size
                and prev_fail.get("source_mtime") == job.mtime):
            summary.previously_failed += 1
            continue
        todo.append((job, split, rel_out))

    new_failures = [{"source": str(src), "reason": reason} for src, reason in not_audio]
    workers = max(1, min(jobs or os.cpu_count() or 1, len(todo) or 1))
    bar = tqdm(total=len(todo), unit="file", desc="convert", disable=not progress or not todo,
               file=sys.stderr)
    try:
        cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
        pin = cores if workers >= len(cores) > 1 else []
        with ProcessPoolExecutor(max_workers=workers, initializer=_init_worker,
                                 initargs=(pin, multiprocessing.Value("i", 0))) as pool:
            futures = {pool.submit(convert_one, str(job.source), str(out / rel_out), rate,
                                   min_seconds): (job, split, rel_out)
                       # largest first, so no long file is left running alone at the end
                       for job, split, rel_out in sorted(todo, key=lambda t: -t[0].size)}
            def record(future, interrupted=False):
                job, split, rel_out = futures[future]
                result = future.result()
                base = {"source": str(job.source), "source_size": job.size,
                        "source_mtime": job.mtime}
                if "error" in result:
                    if interrupted:  # its ffmpeg may have had the Ctrl-C: try it next time
                        return
                    summary.failed += 1
                    failure = {**base, "reason": result["error"]}
                    new_failures.append(failure)
                    append_jsonl(failures_path, failure)
                else:
                    summary.converted += 1
                    entry = {"path": rel_out, "split": split, "seconds": result["seconds"],
                             "rate": rate, **base}
                    done[str(job.source)] = entry
                    failed_before.pop(str(job.source), None)
                    append_jsonl(manifest_path, entry)
                bar.update(1)

            recorded = set()
            try:
                for future in as_completed(futures):
                    record(future)
                    recorded.add(future)
            except BaseException:  # Ctrl-C: drop the queue, finish and keep the files in hand
                pool.shutdown(wait=True, cancel_futures=True)
                for future in futures:
                    if future not in recorded and future.done() and not future.cancelled():
                        record(future, interrupted=True)
                raise
    finally:
        bar.close()

    # Compact both files: one line per source, sorted, written atomically.
    entries = sorted(done.values(), key=lambda e: e["path"])
    rewrite_jsonl(manifest_path, entries)
    failures = {e["source"]: e for e in failed_before.values()}
    failures.update({e["source"]: e for e in new_failures})
    for ok in done:
        failures.pop(ok, None)
    rewrite_jsonl(failures_path, sorted(failures.values(), key=lambda e: e["source"]))
    summary.failed += len(not_audio)
    summary.seconds = {}
    for entry in entries:
        split = entry.get("split", "train")
        summary.seconds[split] = summary.seconds.get(split, 0.0) + entry.get("seconds", 0.0)
    return summary
