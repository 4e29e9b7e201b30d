#!/usr/bin/env python3
"""The original musicrgan generation command, kept working:

    python make_music.py <model_path> <input_window> <bitrate> <num songs> <savepath>

What the arguments mean now:
  <model_path>    a run folder (from `musicrgan train new` or train_model.py)
  <input_window>  samples of priming audio, taken from the run's corpus, fed to the model
                  before it generates (families that generate from noise ignore it)
  <bitrate>       the sample rate of the written wavs, in Hz; the model generates at its own
                  rate and the result is resampled if they differ (the original hard-coded
                  22000 Hz whatever the model was trained on)
  <num songs>     songs to generate, all in one batch
  <savepath>      the folder the wavs go to
Each song is 10 seconds; `musicrgan generate` offers --seconds, --seed and --temperature.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "src"))

USAGE = "usage: python make_music.py <model_path> <input_window> <bitrate> <num songs> <savepath>"


def main(argv: list[str]) -> int:
    from musicrgan.legacy import usage_error
    if len(argv) != 5:
        return usage_error("make_music.py", f"expected 5 arguments, got {len(argv)}", USAGE)
    model_path, window, rate, n, save_path = argv
    if not (window.isdigit() and rate.isdigit() and n.isdigit()) or int(rate) == 0:
        return usage_error("make_music.py", "<input_window>, <bitrate> and <num songs> must "
                           "be positive whole numbers")
    from musicrgan.generate import generate
    from musicrgan.models.base import ContinuesAudio, GenerationRequest, RequestError
    from musicrgan.runs import Run, RunError
    names = {"n": "<num songs>", "window": "<input_window>", "prime": "<input_window>"}
    try:
        run = Run(Path(model_path))
        primed = isinstance(run.family, ContinuesAudio)
        window_s = int(window) / run.family.rate if primed else None
        paths = generate(run, Path(save_path), GenerationRequest(n=int(n), seconds=10.0),
                         window=window_s, rate=int(rate), prime_from_corpus=primed)
    except RequestError as exc:  # in the original's argument names
        return usage_error("make_music.py", f"{names.get(exc.field, exc.field)} {exc.reason}")
    except RunError as exc:
        return usage_error("make_music.py", str(exc))
    for path in paths:
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
