#!/usr/bin/env python3
"""The original musicrgan conversion command, kept working:

    python convert_audio.py <train dir in> <test dir in> <train dir out> <test dir out> <bitrate>

<bitrate> is the sample rate in Hz (the original called it bitrate). Each output folder gets
mono 16-bit wavs plus manifest.jsonl and failures.jsonl. The original read the first two
arguments swapped; this one reads them in the order its usage line gives.
New work should use `musicrgan convert SRC... OUT --rate R`, which makes one corpus folder.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "src"))

USAGE = ("usage: python convert_audio.py <train dir in> <test dir in> <train dir out> "
         "<test dir out> <bitrate>")


def main(argv: list[str]) -> int:
    from musicrgan.legacy import usage_error
    if len(argv) != 5:
        return usage_error("convert_audio.py", f"expected 5 arguments, got {len(argv)}", USAGE)
    train_in, test_in, train_out, test_out, rate = argv
    if not rate.isdigit() or int(rate) <= 0:
        return usage_error("convert_audio.py",
                           f"<bitrate> is the sample rate in Hz, got {rate!r}")
    for folder in (train_in, test_in):
        if not Path(folder).exists():
            return usage_error("convert_audio.py", f"input not found: {folder}")
    from musicrgan.corpus.convert import convert
    status = 1
    for src, out in ((train_in, train_out), (test_in, test_out)):
        summary = convert([Path(src)], Path(out), rate=int(rate), flat_split="train")
        print(f"{src} -> {out}: {summary.line(Path(out))}")
        status = 0 if summary.converted or summary.unchanged else status
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
