"""`make demo`: the main job on the built-in corpus, start to finish: synthesize the techno
corpus, train the family that learns it best per CPU minute for a wall-clock budget (5
minutes by default: `make demo DEMO_MINUTES=10`), generate loops into results/ (with
results/index.html to listen to them), measure them against the corpus, and say where to
listen. Run again, it trains the same run for another budget.

The budget, not an epoch count, ends training: the same training step runs several times
faster on one 2-core machine than on another, and the demo promises minutes.

The family is the one `musicrgan compare` ranked first on this corpus under the same
training budget; docs/compare.md has its table, the command and the machine: a two-stage
chain, a vqvae (audio to codes and back) and a code-prior over its codes, trained one after
the other within the one budget, split as `compare` splits it. Once the code-prior exists
the vqvae is final (the prior learned its codes), so a second demo trains the prior. Each
loop gets a tempo from the corpus's range (the prior hears a beat clock; `generate --bpm`
picks one)."""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from pathlib import Path

from .cli import main as cli
from .runs import CONFIG, DamagedState, RunError

CORPUS, RESULTS = "data/techno", "results"
FAMILY = "vqvae+code-prior"  # best by Fréchet distance in docs/compare.md
UPSTREAM, GENERATOR = FAMILY.split("+")
UPSTREAM_RUN, RUN = f"runs/demo-{UPSTREAM}", f"runs/demo-{GENERATOR}"
MINUTES = 5.0
# 24 test loops: the descriptor ranges and the Fréchet reference evaluate reports come from
# the test split, and from 12 loops the corpus's own train clips fell inside those ranges
# for as few as 53 % (docs/compare.md, "A test split of 24 loops")
LOOPS, TEST_FRACTION, SECONDS = 96, 0.25, 8.0


def _exists(run: str) -> bool:
    return (Path(run) / CONFIG).exists()


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.3f}"


def training_commands(minutes: float):
    """The demo's `train` commands, each made when its turn comes: the upstream trains for
    its share of the budget, through the phases its family plans for a budget (the vqvae's
    autoencoder phase alone by default: docs/compare.md), and the code-prior for what the
    upstream left. A demo stopped before its code-prior existed finishes the upstream's
    share first."""
    from .compare import UPSTREAM_SHARE
    from .runs import read_state, training_seconds
    budget = minutes * 60
    if _exists(RUN):
        state = read_state(Path(RUN))
        print(f"\n{RUN} exists ({state['epochs_done']} epochs, "
              f"{training_seconds(state) / 60:.1f} training min, over {UPSTREAM_RUN}): "
              f"training it {minutes:g} more minutes")
        yield ["train", "continue", RUN, "--minutes", _minutes(budget)]
        return
    yield from _upstream_commands(budget * UPSTREAM_SHARE)
    spent = training_seconds(read_state(Path(UPSTREAM_RUN)))
    # at least a tenth of the budget, should the upstream's last epoch have run long
    yield ["train", "new", RUN, "--model", GENERATOR, "--upstream", UPSTREAM_RUN,
           "--minutes", _minutes(max(budget - spent, 0.1 * budget)), "--set", "patience=0"]


def upstream_plan():
    """How the upstream spends its share of the budget: its family's plan for a budget on
    its default config (phases, each with the part of the share spent when it ends)."""
    from .models import get_family
    family = get_family(UPSTREAM)
    return family(family.Config(), 16000).budget_phases()


def _upstream_commands(share: float):
    """The upstream's commands for `share` seconds, phase by phase as its family's default
    config plans a budget (compare.py trains a chain's first stage the same way): each phase
    until its part of the share is spent, a phase entered even if the last ran over."""
    from .models import get_family
    from .runs import read_state, stands_against, training_seconds
    family = get_family(UPSTREAM)
    for phase, until in upstream_plan():
        if not _exists(UPSTREAM_RUN):
            # patience 0: the budget, not early stopping, ends training
            yield ["train", "new", UPSTREAM_RUN, "--model", UPSTREAM, "--data", CORPUS,
                   "--minutes", _minutes(share * until), "--set", "patience=0"]
            continue
        state = read_state(Path(UPSTREAM_RUN))
        standing = stands_against(family, state, phase)
        if standing == "past":
            continue
        left = share * until - training_seconds(state)
        if standing == "before":
            yield ["train", "continue", UPSTREAM_RUN, "--phase", phase,
                   "--minutes", _minutes(max(left, 0.05 * share))]
        elif left > 1:
            print(f"\n{UPSTREAM_RUN} exists with no {GENERATOR} over it yet: training it the "
                  f"{left / 60:.1f} minutes left of its share" +
                  (f" in its {phase} phase" if phase else ""))
            yield ["train", "continue", UPSTREAM_RUN, "--minutes", _minutes(left)]


def run(minutes: float = MINUTES, loops: int = LOOPS, seconds: float = SECONDS,
        eval_clips: int = 16) -> int:
    started = time.time()
    prepare = [["synth", CORPUS, "--loops", str(loops), "--seconds", str(seconds),
                "--rate", "16000", "--test-fraction", str(TEST_FRACTION)],
               ["info", CORPUS, "--show", "3"]]
    listen = [["generate", RUN, "--n", "3", "--seconds", str(seconds), "--out", RESULTS,
               "--seed", "1", "--match-loudness"],
              ["evaluate", RUN, "--n", str(eval_clips), "--seconds", str(seconds), "--quiet"]]
    # chain() takes each training command only once the one before it has run
    try:
        for argv in itertools.chain(prepare, training_commands(minutes), listen):
            print(f"\n$ musicrgan {' '.join(argv)}", flush=True)
            status = cli(argv)
            if status:
                return status
    except RunError as exc:  # the demo reads its runs' state.json itself, outside `cli`
        fix = ("; `musicrgan train continue RUN --repair` rebuilds it from history.csv"
               if isinstance(exc, DamagedState) else "")
        print(f"make demo: error: {exc}{fix}", file=sys.stderr)
        return 2
    print(f"\nDone in {(time.time() - started) / 60:.1f} min. Listen:")
    print(f"  generated loops, with spectrograms: {RESULTS}/index.html (open it in a browser)")
    print(f"  corpus loops:            {CORPUS}/train/*.wav")
    print(f"  numbers:                 {RUN}/eval.json, {RUN}/history.csv and "
          f"{UPSTREAM_RUN}/history.csv (tensorboard --logdir runs)")
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
