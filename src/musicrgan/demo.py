"""`make demo`: the main job on the built-in corpus, start to finish."""

from __future__ import annotations

import sys

from .cli import main as cli


def run(corpus: str = "data/techno", loops: int = 24, seconds: float = 8.0) -> int:
    steps = [["synth", corpus, "--loops", str(loops), "--seconds", str(seconds), "--rate", "16000"],
             ["info", corpus, "--show", "3"]]
    for argv in steps:
        print(f"\n$ musicrgan {' '.join(argv)}", flush=True)
        status = cli(argv)
        if status:
            return status
    print(f"\nThe built-in corpus is in {corpus}/ (train/, test/, manifest.jsonl): open the wavs "
          "to listen.")
    return 0


if __name__ == "__main__":
    sys.exit(run())
