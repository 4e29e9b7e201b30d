"""`make demo`: the main job on the built-in corpus, start to finish: synthesize the techno
corpus, train the family that learns it best per CPU minute for a wall-clock budget (5
minutes by default: `make demo DEMO_MINUTES=10`), generate loops into results/ (with
results/index.html to listen to them), measure them against the corpus, and say where to
listen. Run again, it trains the same run for another budget.

The budget, not an epoch count, ends training: the same training step runs several times
faster on one 2-core machine than on another, and the demo promises minutes.

The family is the one `musicrgan compare` ranked first on this corpus under the same
training budget; docs/compare.md has its table, the command and the machine. Generation and
evaluation use best.keras: for lstm-gan, the epoch whose clips were closest to the test
split by Fréchet distance. Each loop gets a tempo from the corpus's range (lstm-gan keeps a
beat clock; `generate --bpm` picks one)."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from .cli import main as cli

CORPUS, RESULTS = "data/techno", "results"
FAMILY = "lstm-gan"  # best by Fréchet distance in docs/compare.md
RUN = f"runs/demo-{FAMILY}"
MINUTES = 5.0
# 12 test loops: the descriptor ranges evaluate reports come from the test split
LOOPS, TEST_FRACTION, SECONDS = 48, 0.25, 8.0


def run(minutes: float = MINUTES, loops: int = LOOPS, seconds: float = SECONDS,
        eval_clips: int = 16) -> int:
    started = time.time()
    from .runs import read_state, training_seconds
    exists = (Path(RUN) / "config.yaml").exists()
    if exists:
        state = read_state(Path(RUN))
        print(f"\n{RUN} exists ({state['epochs_done']} epochs, "
              f"{training_seconds(state) / 60:.1f} training min): training it "
              f"{minutes:g} more minutes")
        train = ["train", "continue", RUN, "--minutes", str(minutes)]
    else:
        # no audio samples during training: each costs a new trace of the generator (36 s
        # of a 5-minute budget, measured); `generate` below writes what there is to hear
        train = ["train", "new", RUN, "--model", FAMILY, "--data", CORPUS, "--minutes",
                 str(minutes), "--set", "patience=0"]
    steps = [["synth", CORPUS, "--loops", str(loops), "--seconds", str(seconds),
              "--rate", "16000", "--test-fraction", str(TEST_FRACTION)],
             ["info", CORPUS, "--show", "3"], train,
             ["generate", RUN, "--n", "3", "--seconds", str(seconds), "--out", RESULTS,
              "--seed", "1", "--match-loudness"],
             ["evaluate", RUN, "--n", str(eval_clips), "--seconds", str(seconds), "--quiet"]]
    for argv in steps:
        print(f"\n$ musicrgan {' '.join(argv)}", flush=True)
        status = cli(argv)
        if status:
            return status
    print(f"\nDone in {(time.time() - started) / 60:.1f} min. Listen:")
    print(f"  generated loops, with spectrograms: {RESULTS}/index.html (open it in a browser)")
    print(f"  corpus loops:            {CORPUS}/train/*.wav")
    print(f"  numbers:                 {RUN}/eval.json, {RUN}/history.csv "
          f"(tensorboard --logdir {RUN}/tensorboard)")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m musicrgan.demo", description=__doc__)
    parser.add_argument("--minutes", type=float, default=MINUTES,
                        help="training budget in wall-clock minutes (default %(default)s)")
    args = parser.parse_args(argv)
    if not args.minutes > 0:
        parser.error(f"--minutes must be positive, got {args.minutes}")
    return run(args.minutes)


if __name__ == "__main__":
    sys.exit(main())
