"""Streaming windows: windows per second, and peak memory on a corpus and on the same
corpus repeated 10 times. Each measurement runs in a fresh process (peak RSS is per process).

    python bench/bench_stream.py [--files N] [--window 16000] [--batches 300]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import OUT, real_audio, save  # noqa: E402


def measure(corpus: str, window: int, batch: int, batches: int) -> None:
    """Runs in the child process: stream `batches` batches, print windows/s and peak RSS."""
    from musicrgan.data import window_dataset
    ds = window_dataset(corpus, "train", window, batch, steps=batches, seed=0)
    it = iter(ds)
    next(it)  # pipeline start-up is not throughput
    t = time.perf_counter()
    n = sum(int(b.shape[0]) for b in it)
    elapsed = time.perf_counter() - t
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"windows_per_s": n / elapsed, "peak_mib": peak_kib / 1024}))


def run_child(corpus: Path, args) -> dict:
    proc = subprocess.run([sys.executable, __file__, "--child", str(corpus), "--window",
                           str(args.window), "--batch", str(args.batch), "--batches",
                           str(args.batches)], capture_output=True, text=True, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--child")
    ap.add_argument("--files", type=int, default=12)
    ap.add_argument("--window", type=int, default=16000)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--batches", type=int, default=300)
    args = ap.parse_args()
    if args.child:
        return measure(args.child, args.window, args.batch, args.batches)

    from musicrgan.corpus.convert import convert
    work = OUT / "stream"
    once = work / "x1"
    if not (once / "manifest.jsonl").exists():
        files = sorted(real_audio("orchestral").glob("*.ogg"))[: args.files]
        src = work / "src"
        src.mkdir(parents=True, exist_ok=True)
        for f in files:
            shutil.copy(f, src / f.name)
        convert([src], once, rate=16000, test_fraction=0.0, progress=False)
    # the same corpus ten times: ten distinct files per track (hard links, no extra disk)
    tenfold = work / "x10"
    shutil.rmtree(tenfold, ignore_errors=True)
    for k in range(10):
        for wav in (once / "train").glob("*.wav"):
            dest = tenfold / "train" / f"copy{k}_{wav.name}"
            dest.parent.mkdir(parents=True, exist_ok=True)
            os.link(wav, dest)
    minutes = sum(__import__("soundfile").info(str(w)).duration
                  for w in (once / "train").glob("*.wav")) / 60
    x1, x10 = run_child(once, args), run_child(tenfold, args)
    save("stream", {
        "corpus_minutes_x1": round(minutes, 1), "window": args.window, "batch": args.batch,
        "batches": args.batches,
        "windows_per_s_x1": round(x1["windows_per_s"]), "windows_per_s_x10": round(x10["windows_per_s"]),
        "peak_mib_x1": round(x1["peak_mib"], 1), "peak_mib_x10": round(x10["peak_mib"], 1),
        "peak_ratio_x10_over_x1": round(x10["peak_mib"] / x1["peak_mib"], 3),
        "corpus_mib_x1": round(sum(w.stat().st_size for w in (once / "train").glob("*.wav")) / 2**20, 1),
    })


if __name__ == "__main__":
    main()
