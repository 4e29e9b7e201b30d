"""Shared by the benchmarks: the machine's description, real recordings, result files."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import musicrgan  # noqa: F401  (quiet TensorFlow start-up before anything imports it)

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"
REAL = ROOT / "data" / "real"
FETCH = ROOT.parent / "shared" / "corpora" / "fetch-real-audio"


def real_audio(kind: str = "orchestral") -> Path:
    """Real, freely licensed recordings (fetched once from Debian packages, not committed)."""
    folder = REAL / kind
    if not (folder.is_dir() and any(folder.iterdir())):
        subprocess.run([str(FETCH), str(REAL), kind], check=True)
    return folder


def machine() -> dict:
    cpu = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    musicrgan.import_tensorflow()
    versions = {}
    for mod in ("numpy", "soundfile", "tensorflow", "keras"):
        try:
            versions[mod] = __import__(mod).__version__
        except Exception:
            pass
    return {"cpu": cpu, "cores": os.cpu_count(), "python": sys.version.split()[0],
            "platform": platform.platform(), **versions}


def save(name: str, result: dict) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / f"{name}.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


def timed(fn, repeat: int = 3) -> float:
    """The best wall time of `repeat` calls of fn, after one untimed call (tracing and
    compiling are not throughput)."""
    fn()
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - started)
    return best
