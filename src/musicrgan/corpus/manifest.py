"""A corpus folder: `train/*.wav`, `test/*.wav`, `manifest.jsonl`, `failures.jsonl`.

Each manifest line describes one wav (path relative to the corpus, split, seconds, rate, and
where it came from). Lines are appended one `write` at a time as files complete, so a killed
process leaves at most one torn last line, which readers skip.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path

from ..audio import atomic_write_text

SPLITS = ("train", "test")
MANIFEST = "manifest.jsonl"
FAILURES = "failures.jsonl"
log = logging.getLogger("musicrgan")


def split_for(relative_path: str, test_fraction: float) -> str:
    """Deterministic split: the same relative path lands in the same split on every machine."""
    digest = hashlib.sha1(relative_path.encode("utf-8")).digest()
    return "test" if int.from_bytes(digest[:8], "big") / 2**64 < test_fraction else "train"


def shard_for(relative_path: str, shards: int) -> int:
    """The shard (1 to `shards`) of an input file: a hash of its relative path, salted apart
    from the split's hash so that every shard gets its share of test files."""
    digest = hashlib.sha1(b"shard:" + relative_path.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % shards + 1


def read_jsonl(path: Path) -> list[dict]:
    """Every complete JSON object line of a file. A torn last line (killed writer) is skipped
    quietly; other garbled lines (a damaged file) are skipped with a warning: the corpus's
    wavs count without their manifest lines, so the folder still works."""
    if not path.is_file():
        return []
    entries, garbled = [], 0
    with open(path, encoding="utf-8", errors="replace") as fh:
        lines = fh.readlines()
    for number, line in enumerate(lines, 1):
        try:
            entry = json.loads(line)
        except ValueError:
            entry = None
        if isinstance(entry, dict):
            entries.append(entry)
        elif line.strip() and number < len(lines):
            garbled += 1
    if garbled:
        log.warning(f"{path}: {garbled} of {len(lines)} lines are damaged and were skipped "
                    "(the wavs in the folder are still used; `musicrgan convert` or `synth` "
                    "into the folder writes their lines again)")
    return entries


def append_jsonl(path: Path, entry: dict) -> None:
    """Append one line with a single write (O_APPEND), so lines never interleave."""
    data = (json.dumps(entry, ensure_ascii=False) + "\n").encode("utf-8")
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


def rewrite_jsonl(path: Path, entries: list[dict]) -> None:
    atomic_write_text(path, "".join(json.dumps(e, ensure_ascii=False) + "\n" for e in entries))


def load_manifest(corpus: Path) -> list[dict]:
    """Manifest entries whose wav exists, last entry per path winning."""
    latest: dict[str, dict] = {}
    for entry in read_jsonl(corpus / MANIFEST):
        if "path" in entry and (corpus / entry["path"]).is_file():
            latest[entry["path"]] = entry
    return list(latest.values())


def split_files(corpus: Path, split: str) -> list[Path]:
    """The wavs of one split, sorted. Files in the folder count even without a manifest line,
    so a folder of wavs made by hand is a corpus too."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; use one of {SPLITS}")
    folder = corpus / split
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.rglob("*.wav") if not p.name.startswith("."))
