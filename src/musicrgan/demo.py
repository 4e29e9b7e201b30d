"""`make demo`: the main job on the built-in corpus, start to finish: synthesize the techno
corpus, train the family that learns it best per CPU minute, generate loops into results/
(with results/index.html to listen to them), measure them against the corpus, and say
where to listen (about 5 minutes on 2 CPU cores). Re-running picks up where it stopped.

The family is the one `musicrgan compare` ranked first on this corpus under the same
3-minute training budget; docs/compare.md has its table, the command and the machine.
Generation and evaluation use best.keras: for lstm-gan, the epoch whose clips were closest
to the test split by Fréchet distance (it fell every epoch of a 3-minute run). Each loop
gets a tempo from the corpus's range (lstm-gan keeps a beat clock; `generate --bpm` picks
one)."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from .cli import main as cli

CORPUS, RESULTS = "data/techno", "results"
FAMILY = "lstm-gan"  # best by Fréchet distance in docs/compare.md
RUN = f"runs/demo-{FAMILY}"
EPOCHS = 12


def run(epochs: int = EPOCHS, loops: int = 24, seconds: float = 8.0) -> int:
    started = time.time()
    from .runs import read_state
    done = read_state(Path(RUN))["epochs_done"] if (Path(RUN) / "config.yaml").exists() else 0
    if (Path(RUN) / "config.yaml").exists():
        train = ["train", "continue", RUN, "--epochs", str(epochs - done)] if done < epochs else None
    else:
        train = ["train", "new", RUN, "--model", FAMILY, "--data", CORPUS, "--epochs",
                 str(epochs), "--set", "sample_every=5", "--set", "patience=0"]
    steps = [["synth", CORPUS, "--loops", str(loops), "--seconds", str(seconds),
              "--rate", "16000"],
             ["info", CORPUS, "--show", "3"], train,
             ["generate", RUN, "--n", "3", "--seconds", str(seconds), "--out", RESULTS,
              "--seed", "1"],
             ["evaluate", RUN, "--n", "6", "--seconds", "4", "--quiet"]]
    for argv in steps:
        if argv is None:
            print(f"\n{RUN} already has {done} epochs: skipping training")
            continue
        print(f"\n$ musicrgan {' '.join(argv)}", flush=True)
        status = cli(argv)
        if status:
            return status
    print(f"\nDone in {(time.time() - started) / 60:.1f} min. Listen:")
    print(f"  generated loops, with spectrograms: {RESULTS}/index.html (open it in a browser)")
    print(f"  corpus loops:            {CORPUS}/train/*.wav")
    print(f"  samples during training: {RUN}/samples/")
    print(f"  numbers:                 {RUN}/eval.json, {RUN}/history.csv "
          f"(tensorboard --logdir {RUN}/tensorboard)")
    return 0


if __name__ == "__main__":
    sys.exit(run())
