"""`make demo`: the main job on the built-in corpus, start to finish: synthesize the techno
corpus, train the family that learns it best per CPU minute, generate loops into results/,
and say where to listen (about 5 minutes on 2 CPU cores). Re-running picks up where it
stopped.

Why lstm-gan: after the same few CPU minutes on this corpus, fft-lstm's output is a
drone (temperature 0) or noise with the corpus's spectral envelope (temperature > 0), while
lstm-gan's has percussive hits with the corpus's spectral flatness (spectrograms compared
in the session notes of issue 3). Issue 4's `compare` is to make this choice by numbers."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from .cli import main as cli

CORPUS, RUN, RESULTS = "data/techno", "runs/demo-lstm-gan", "results/demo"
EPOCHS = 10


def run() -> int:
    started = time.time()
    from .runs import read_state
    done = read_state(Path(RUN))["epochs_done"] if (Path(RUN) / "config.yaml").exists() else 0
    if (Path(RUN) / "config.yaml").exists():
        train = ["train", "continue", RUN, "--epochs", str(EPOCHS - done)] if done < EPOCHS else None
    else:
        train = ["train", "new", RUN, "--model", "lstm-gan", "--data", CORPUS, "--epochs",
                 str(EPOCHS), "--set", "sample_every=5", "--set", "patience=0"]
    steps = [["synth", CORPUS, "--loops", "24", "--seconds", "8", "--rate", "16000"],
             ["info", CORPUS, "--show", "3"], train,
             ["generate", RUN, "--n", "3", "--seconds", "8", "--out", RESULTS, "--seed", "1",
              "--checkpoint", "last"]]
    for argv in steps:
        if argv is None:
            print(f"\n{RUN} already has {done} epochs: skipping training")
            continue
        print(f"\n$ musicrgan {' '.join(argv)}", flush=True)
        status = cli(argv)
        if status:
            return status
    print(f"\nDone in {(time.time() - started) / 60:.1f} min. Listen:")
    print(f"  corpus loops:         {CORPUS}/train/*.wav")
    print(f"  samples during training: {RUN}/samples/")
    print(f"  generated loops:      {RESULTS}/")
    print(f"  training history:     {RUN}/history.csv  (tensorboard --logdir {RUN}/tensorboard)")
    return 0


if __name__ == "__main__":
    sys.exit(run())
