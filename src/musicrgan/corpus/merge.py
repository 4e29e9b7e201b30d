"""`musicrgan corpus merge OUT PART...`: corpus folders converted apart (`convert --shard I/N`
on N machines) joined into one. Wavs are linked (or copied, across file systems) under their
own paths, never decoded again; manifests and failures are merged, each file's split kept.

Each wav lands under a temporary name and is renamed when whole, and the manifest is
rewritten once at the end: a killed merge leaves no half file, and running it again
finishes the job (files already in OUT are not copied twice)."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from .. import audio
from ..locks import folder_lock
from .convert import remove_stale_temporaries
from .manifest import FAILURES, MANIFEST, load_manifest, read_jsonl, rewrite_jsonl


class MergeError(ValueError):
    """Parts that cannot make one corpus (the message says which and why)."""


@dataclass
class MergeSummary:
    added: int = 0
    kept: int = 0
    failures: int = 0

    def line(self, out: Path) -> str:
        return (f"{out}: {self.added} files added, {self.kept} already there, "
                f"{self.failures} failures listed in {out / FAILURES}")


def merge(out: Path, parts: list[Path]) -> MergeSummary:
    out = Path(out)
    parts = [Path(p) for p in parts]
    for part in parts:
        if not (part / MANIFEST).is_file():
            raise MergeError(f"{part} is not a corpus folder (no {MANIFEST})")
        if part.resolve() == out.resolve():
            raise MergeError(f"{part} is the output folder: name the parts apart from OUT")
    out.mkdir(parents=True, exist_ok=True)
    with folder_lock(out, "merging into"):
        return _merge_locked(out, parts)


def _merge_locked(out: Path, parts: list[Path]) -> MergeSummary:
    remove_stale_temporaries(out)
    entries = {e["path"]: e for e in load_manifest(out)}
    failures = {e["source"]: e for e in read_jsonl(out / FAILURES) if "source" in e}
    from_part = {path: out for path in entries}
    rates = {e["rate"] for e in entries.values() if "rate" in e}
    summary = MergeSummary()
    for part in parts:
        with folder_lock(part, "merging from"):  # not while a convert still writes into it
            found = load_manifest(part)
            failures.update({e["source"]: e for e in read_jsonl(part / FAILURES)
                             if "source" in e})
        rates |= {e["rate"] for e in found if "rate" in e}
        if len(rates) > 1:
            raise MergeError(f"the parts are at different rates ({sorted(rates)} Hz): convert "
                             "every shard with the same --rate")
        for entry in found:
            path = entry["path"]
            known = entries.get(path)
            if known is not None and known.get("source") != entry.get("source"):
                raise MergeError(f"{path} comes from {known.get('source')} in "
                                 f"{from_part[path]} and from {entry.get('source')} in {part}: "
                                 "these parts were not converted from the same inputs")
            target = out / path
            if known is not None and target.is_file() and \
                    target.stat().st_size == (part / path).stat().st_size:
                summary.kept += 1
                continue
            _place(part / path, target)
            entries[path], from_part[path] = entry, part
            summary.added += 1
    converted = {e.get("source") for e in entries.values()}
    failures = {s: e for s, e in failures.items() if s not in converted}
    rewrite_jsonl(out / MANIFEST, sorted(entries.values(), key=lambda e: e["path"]))
    rewrite_jsonl(out / FAILURES, sorted(failures.values(), key=lambda e: e["source"]))
    summary.failures = len(failures)
    return summary


def _place(source: Path, target: Path) -> None:
    """A hard link where the file system allows (no space taken), else a copy; under a
    temporary name, renamed into place when whole."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(audio.temporary_file(target, target.stem))
    tmp.unlink(missing_ok=True)
    try:
        try:
            os.link(source, tmp)
        except OSError:
            shutil.copyfile(source, tmp)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
