"""Conversion throughput: `musicrgan convert` against the original approach, a sequential
loop of one ffmpeg process per file, on the same real recordings in the same run.

    python bench/bench_convert.py [--files N] [--rate 16000]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import OUT, real_audio, save  # noqa: E402

from musicrgan.audio import ffmpeg_exe  # noqa: E402
from musicrgan.corpus.convert import convert  # noqa: E402


def original_loop(files: list[Path], out: Path, rate: int) -> None:
    """What musicrgan's convert script did: one ffmpeg call per file, one after another."""
    out.mkdir(parents=True, exist_ok=True)
    for f in files:
        subprocess.run([ffmpeg_exe(), "-nostdin", "-loglevel", "error", "-y", "-i", str(f),
                        "-ac", "1", "-ar", str(rate), str(out / (f.stem + ".wav"))], check=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--files", type=int, default=16)
    ap.add_argument("--rate", type=int, default=16000)
    args = ap.parse_args()
    files = sorted(real_audio("orchestral").glob("*.ogg"))[: args.files]
    work = OUT / "convert"
    shutil.rmtree(work, ignore_errors=True)
    source = work / "src"
    source.mkdir(parents=True)
    for f in files:
        shutil.copy(f, source / f.name)
    seconds = sum(__import__("soundfile").info(str(f)).duration for f in files)

    t = time.perf_counter()
    original_loop(files, work / "baseline", args.rate)
    baseline = time.perf_counter() - t
    t = time.perf_counter()
    summary = convert([source], work / "ours", rate=args.rate, progress=False)
    ours = time.perf_counter() - t
    assert summary.converted == len(files), summary
    t = time.perf_counter()
    again = convert([source], work / "ours", rate=args.rate, progress=False)
    rerun = time.perf_counter() - t
    assert again.converted == 0
    save("convert", {
        "files": len(files), "audio_minutes": round(seconds / 60, 1), "rate": args.rate,
        "baseline_s": round(baseline, 2), "ours_s": round(ours, 2),
        "speedup": round(baseline / ours, 2), "rerun_noop_s": round(rerun, 3),
        "baseline_x_realtime": round(seconds / baseline, 1),
        "ours_x_realtime": round(seconds / ours, 1),
    })
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
