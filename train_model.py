#!/usr/bin/env python3
"""The original musicrgan training command, kept working:

    python train_model.py new|continue|generate <modelpath> <epochs> <songpath>

What the arguments mean now:
  new       <modelpath> run folder to create; <epochs> epochs to train; <songpath> a corpus
            folder (from `musicrgan convert` or `synth`), or a folder of audio files, which
            is first converted into <modelpath>-corpus at 16 kHz. The family is fft-lstm
            (the original's regressive2); `musicrgan train new --model ...` offers all.
  continue  <modelpath> the run folder; <epochs> more epochs; <songpath> is ignored (the
            run remembers its corpus). History is appended, never overwritten.
  generate  <modelpath> the run folder; <epochs> is read as seconds of audio to generate;
            <songpath> the folder the wav goes to.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "src"))

USAGE = "usage: python train_model.py new|continue|generate <modelpath> <epochs> <songpath>"


def main(argv: list[str]) -> int:
    from musicrgan.legacy import usage_error
    if len(argv) != 4 or argv[0] not in ("new", "continue", "generate"):
        return usage_error("train_model.py", "expected new|continue|generate and 3 arguments",
                           USAGE)
    action, model_path, epochs, song_path = argv
    try:
        float(epochs)
    except ValueError:
        return usage_error("train_model.py", f"<epochs> must be a number, got {epochs!r}")
    from musicrgan.cli import main as cli
    if action == "new":
        corpus = Path(song_path)
        if corpus.is_dir() and not (corpus / "train").is_dir():
            converted = Path(f"{model_path.rstrip('/')}-corpus")
            status = cli(["convert", str(corpus), str(converted), "--rate", "16000"])
            if status == 2:
                return status
            corpus = converted
        return cli(["train", "new", model_path, "--model", "fft-lstm", "--data", str(corpus),
                    "--epochs", str(int(float(epochs)))])
    if action == "continue":
        return cli(["train", "continue", model_path, "--epochs", str(int(float(epochs)))])
    return cli(["generate", model_path, "--n", "1", "--seconds", epochs, "--out", song_path])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
