"""Two local CPU workers (`train --strategy multi-worker`) against one process on the same
global batch (issue 13 §3): windows per second and the loss curves of both, for fft-lstm
and sample-lstm at their default configs on a synthesized corpus. The baseline, in the same
run: one process with `--strategy default`, batch_size 16; the two workers take 8 each
(global 16) with one intra-op thread each (the machine's two cores split between them).
Then, for every family at its default config, the gradient bytes each worker sends and
receives per step in a ring all-reduce, 2 (N-1)/N x 4 bytes x trainable parameters, for
what scaling to expect on real hardware (docs/benchmarks.md).

    python bench/bench_distribute.py [--epochs 4] [--steps 30]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import OUT, save  # noqa: E402

from musicrgan.distribute import local_cluster  # noqa: E402
from musicrgan.models import FAMILIES, family_names  # noqa: E402
from musicrgan.models.base import OnLatents  # noqa: E402

RATE = 16000
GLOBAL_BATCH = 16


def musicrgan(*args, env=None):
    return subprocess.Popen([sys.executable, "-m", "musicrgan", *map(str, args)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def finished(processes):
    for p in processes:
        if p.wait() != 0:
            raise SystemExit(p.stderr.read())


def history(run: Path) -> list[dict]:
    with open(run / "history.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def windows_per_second(rows: list[dict]) -> float:
    """Training windows a second over the epochs after the first (the first traces)."""
    later = rows[1:]
    return sum(int(r["steps"]) * GLOBAL_BATCH for r in later) / sum(float(r["seconds"])
                                                                     for r in later)


def compare(name: str, corpus: Path, folder: Path, epochs: int, steps: int) -> dict:
    common = ["--model", name, "--data", corpus, "--epochs", epochs, "--set",
              f"steps_per_epoch={steps}", "--set", "seed=1"]
    finished([musicrgan("train", "new", folder / "one", *common, "--set",
                        f"batch_size={GLOBAL_BATCH}")])
    processes = []
    for tf_config in local_cluster(2):
        env = {**os.environ, "TF_CONFIG": json.dumps(tf_config), "TF_NUM_INTRAOP_THREADS": "1"}
        processes.append(musicrgan("train", "new", folder / "two", *common, "--set",
                                   f"batch_size={GLOBAL_BATCH // 2}",
                                   "--strategy", "multi-worker", env=env))
    finished(processes)
    one, two = history(folder / "one"), history(folder / "two")
    key = name.replace("-", "_")
    return {
        f"{key}_one_process_windows_per_s": round(windows_per_second(one), 1),
        f"{key}_two_workers_windows_per_s": round(windows_per_second(two), 1),
        f"{key}_two_workers_over_one": round(windows_per_second(two) / windows_per_second(one),
                                             2),
        f"{key}_loss_one": [round(float(r["loss"]), 4) for r in one],
        f"{key}_loss_two": [round(float(r["loss"]), 4) for r in two],
        f"{key}_val_loss_one": [round(float(r["val_loss"]), 4) for r in one],
        f"{key}_val_loss_two": [round(float(r["val_loss"]), 4) for r in two],
    }


def trainable_parameters(name: str) -> int:
    cls = FAMILIES[name]
    family = cls(cls.Config(), RATE)
    if issubclass(cls, OnLatents):
        first = FAMILIES["vqvae" if name == "code-prior" else "wave-vae"]
        upstream = first(first.Config(), RATE)
        family.attach(upstream, upstream.build())
    model = family.build()
    return int(sum(np.prod(w.shape) for w in model.trainable_weights))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--steps", type=int, default=30)
    args = ap.parse_args()
    folder = OUT / "distribute"
    shutil.rmtree(folder, ignore_errors=True)
    corpus = folder / "corpus"
    from musicrgan.corpus.synth import synth_corpus
    synth_corpus(corpus, loops=16, seconds=4, rate=RATE, seed=0, test_fraction=0.25)
    result = {"epochs": args.epochs, "steps_per_epoch": args.steps,
              "global_batch": GLOBAL_BATCH}
    for name in ("fft-lstm", "sample-lstm"):
        result.update(compare(name, corpus, folder / name, args.epochs, args.steps))
    for name in family_names():
        parameters = trainable_parameters(name)
        result[f"{name.replace('-', '_')}_trainable_parameters"] = parameters
        result[f"{name.replace('-', '_')}_allreduce_mb_per_step_2_workers"] = round(
            2 * (2 - 1) / 2 * 4 * parameters / 1e6, 2)
    save("distribute", result)


if __name__ == "__main__":
    main()
