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
  generate  <modelpath> the run folder; <epochs> is not used (the original: "still requires
            all four args"), the song is 10 seconds; <songpath> the song's file when it ends
            in .wav (as the original asked), else a folder the wav goes to.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "src"))

USAGE = "usage: python train_model.py new|continue|generate <modelpath> <epochs> <songpath>"
SONG_SECONDS = 10.0


def generate_song(model_path: str, song_path: str) -> int:
    """The original's generate: one song from the run, written to <songpath>."""
    from musicrgan.legacy import usage_error
    if not (Path(model_path) / "config.yaml").is_file():
        return usage_error("train_model.py", f"<modelpath> {model_path} is not a trained model "
                           "folder (make one with `train_model.py new`)")
    if not song_path.lower().endswith(".wav"):
        from musicrgan.cli import main as cli
        return cli(["generate", model_path, "--n", "1", "--seconds", str(SONG_SECONDS),
                    "--out", song_path])
    song = Path(song_path)
    if song.is_dir():
        return usage_error("train_model.py", f"<songpath> {song} is a folder; give the song's "
                           "file name (ending in .wav) or a folder without .wav")
    if not song.parent.is_dir():
        return usage_error("train_model.py", f"<songpath>'s folder {song.parent} does not exist")
    from musicrgan import audio
    from musicrgan.generate import generate_clips
    from musicrgan.models.base import GenerationRequest, RequestError
    from musicrgan.runs import RunError
    try:
        clips, family, _ = generate_clips(Path(model_path),
                                          GenerationRequest(n=1, seconds=SONG_SECONDS))
        audio.write_wav(song, clips[0], family.rate)
    except (RunError, RequestError, audio.AudioError, OSError) as exc:
        return usage_error("train_model.py", str(exc))
    print(song)
    return 0


def main(argv: list[str]) -> int:
    from musicrgan.legacy import usage_error
    if len(argv) != 4 or argv[0] not in ("new", "continue", "generate"):
        return usage_error("train_model.py", "expected new|continue|generate and 3 arguments",
                           USAGE)
    action, model_path, epochs, song_path = argv
    if action == "generate":
        return generate_song(model_path, song_path)
    if not epochs.isdigit() or int(epochs) < 1:
        return usage_error("train_model.py", f"<epochs> must be a whole number of epochs, at "
                           f"least 1, got {epochs!r}")
    from musicrgan.cli import main as cli
    if action == "new":
        corpus = Path(song_path)
        if not corpus.is_dir():
            return usage_error("train_model.py", f"<songpath> {song_path} is not a folder of "
                               "songs or a corpus folder")
        if not (corpus / "train").is_dir():
            converted = Path(f"{model_path.rstrip('/')}-corpus")
            status = cli(["convert", str(corpus), str(converted), "--rate", "16000"])
            if status == 2:
                return status
            corpus = converted
        return cli(["train", "new", model_path, "--model", "fft-lstm", "--data", str(corpus),
                    "--epochs", epochs])
    if not (Path(model_path) / "config.yaml").is_file():
        return usage_error("train_model.py", f"<modelpath> {model_path} is not a trained model "
                           "folder (make one with `train_model.py new`)")
    return cli(["train", "continue", model_path, "--epochs", epochs])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
