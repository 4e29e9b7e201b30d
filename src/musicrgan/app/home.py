"""The studio's home folder: corpora in data/, runs in runs/, results in results/, and the
studio's own files (job database, job logs, uploads) in .studio/. Every name or path that a
request carries is checked here, so nothing a request says reaches outside the home."""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path

import yaml

# a corpus, run or file name: letters, digits, dot, dash, underscore; no leading dot (so
# no "..", no hidden files), no slash
UPLOAD_DAYS = 7  # an upload (a prime, a file to reconstruct) is kept this long
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,79}$")
AUDIO_SUFFIXES = {".wav", ".mp3", ".flac", ".ogg", ".oga", ".opus", ".m4a", ".aac", ".aif",
                  ".aiff", ".webm", ".wma"}


class NotFound(LookupError):
    """What a request names is not there (404)."""


class Refused(ValueError):
    """A request names something it may not: a bad name, a path outside the home (400)."""


class Home:
    def __init__(self, root: str | Path):
        self.root = Path(root).resolve()
        self.data = self.root / "data"
        self.runs = self.root / "runs"
        self.results = self.root / "results"
        self.studio = self.root / ".studio"
        self.uploads = self.studio / "uploads"
        self.logs = self.studio / "logs"
        for folder in (self.data, self.runs, self.results, self.uploads, self.logs):
            folder.mkdir(parents=True, exist_ok=True)

    @property
    def database(self) -> Path:
        return self.studio / "jobs.sqlite"

    @staticmethod
    def checked_name(value: str, what: str) -> str:
        if not isinstance(value, str) or not NAME.match(value) or ".." in value:
            raise Refused(f"{what} name {value!r}: use letters, digits, '.', '-' and '_' "
                          "(up to 80, not starting with '.')")
        return value

    def inside(self, path: Path, folder: Path) -> Path:
        """`path` with its links resolved, if it stays inside `folder`; else Refused."""
        resolved = path.resolve()
        if not resolved.is_relative_to(folder.resolve()):
            raise Refused(f"{path.name} leads outside the studio's {folder.name}/ folder")
        return resolved

    def file_under(self, folder: Path, relative: str) -> Path:
        """A file named by a relative path under `folder` (results, a corpus): no absolute
        paths, no '..', no hidden parts, no link that leads out."""
        parts = Path(relative).parts
        if (not parts or Path(relative).is_absolute()
                or any(p in ("..", ".") or p.startswith(".") or "\\" in p for p in parts)):
            raise Refused(f"path {relative!r} is not a plain relative path")
        path = self.inside(folder / relative, folder)
        if not path.is_file():
            raise NotFound(f"no file {relative}")
        return path

    # corpora ---------------------------------------------------------------------------
    def corpus(self, name: str, exists: bool = True) -> Path:
        path = self.data / self.checked_name(name, "corpus")
        if exists and not (path / "manifest.jsonl").is_file():
            raise NotFound(f"no corpus {name} in {self.data}")
        return self.inside(path, self.data) if exists else path

    def corpora(self) -> list[dict]:
        return [self.describe_corpus(p.name) for p in sorted(self.data.iterdir())
                if (p / "manifest.jsonl").is_file() and NAME.match(p.name)]

    def describe_corpus(self, name: str) -> dict:
        from ..corpus.manifest import read_jsonl
        path = self.corpus(name)
        entries = read_jsonl(path / "manifest.jsonl")
        failures = read_jsonl(path / "failures.jsonl") if (path / "failures.jsonl").is_file() \
            else []
        rates = sorted({e["rate"] for e in entries if "rate" in e})
        return {"name": name,
                "files": len(entries),
                "train": sum(e.get("split") == "train" for e in entries),
                "test": sum(e.get("split") == "test" for e in entries),
                "minutes": round(sum(e.get("seconds", 0.0) for e in entries) / 60, 2),
                "rate": rates[0] if len(rates) == 1 else rates,
                "failures": [{"source": Path(f.get("source", "?")).name,
                              "reason": f.get("reason", "")} for f in failures]}

    def corpus_clips(self, name: str, split: str) -> list[dict]:
        if split not in ("train", "test"):
            raise Refused("split must be train or test")
        from ..corpus.manifest import read_jsonl
        entries = read_jsonl(self.corpus(name) / "manifest.jsonl")
        return [{"file": e["path"], "seconds": e.get("seconds"),
                 "bpm": e.get("bpm")} for e in entries if e.get("split") == split]

    def corpus_name_of(self, path: str | Path) -> str | None:
        path = Path(path).resolve()
        return path.name if path.parent == self.data.resolve() else None

    # runs ------------------------------------------------------------------------------
    def run_path(self, name: str, exists: bool = True) -> Path:
        path = self.runs / self.checked_name(name, "run")
        if exists:
            if not (path / "config.yaml").is_file():
                raise NotFound(f"no run {name} in {self.runs}")
            return self.inside(path, self.runs)
        return path

    def run_names(self) -> list[str]:
        return [p.name for p in sorted(self.runs.iterdir())
                if (p / "config.yaml").is_file() and NAME.match(p.name)]

    def about(self, name: str) -> dict:
        """The display name and description a user gave the run (RUN/about.json)."""
        path = self.run_path(name) / "about.json"
        try:
            about = json.loads(path.read_text())
        except (OSError, ValueError):
            about = {}
        return {"display_name": about.get("display_name") or name,
                "description": about.get("description") or ""}

    def set_about(self, name: str, display_name: str | None, description: str | None) -> dict:
        from ..audio import atomic_write_text
        about = self.about(name)
        if display_name is not None:
            about["display_name"] = display_name.strip() or name
        if description is not None:
            about["description"] = description
        atomic_write_text(self.run_path(name) / "about.json", json.dumps(about, indent=1))
        return about

    def run_config(self, name: str) -> dict:
        return yaml.safe_load((self.run_path(name) / "config.yaml").read_text())

    def run_name_of(self, path: str | Path) -> str | None:
        path = Path(path).resolve()
        return path.name if path.parent == self.runs.resolve() else None

    # uploads and results ---------------------------------------------------------------
    def new_upload_folder(self) -> tuple[str, Path]:
        upload = uuid.uuid4().hex[:16]
        folder = self.uploads / upload
        folder.mkdir()
        return upload, folder

    def forget_old_uploads(self, days: float = UPLOAD_DAYS) -> int:
        """Remove the uploads made more than `days` ago (a server starting: no job uses
        them); returns how many."""
        import shutil
        import time
        oldest = time.time() - days * 86400
        old = [f for f in self.uploads.iterdir() if f.is_dir() and f.stat().st_mtime < oldest]
        for folder in old:
            shutil.rmtree(folder, ignore_errors=True)
        return len(old)

    def upload(self, upload: str) -> Path:
        """The one audio file of an upload, by its id."""
        if not isinstance(upload, str) or not re.fullmatch(r"[0-9a-f]{16}", upload):
            raise Refused(f"upload id {upload!r} is not one the studio gave")
        folder = self.uploads / upload
        files = [p for p in folder.iterdir() if p.is_file()] if folder.is_dir() else []
        if not files:
            raise NotFound(f"no upload {upload}")
        return files[0]

    def result_folder(self, job: str) -> Path:
        return self.results / job

    def relative_result(self, path: Path) -> str:
        return path.resolve().relative_to(self.results.resolve()).as_posix()


def safe_filename(name: str | None, default: str = "audio") -> str:
    """A client's file name made safe to store: its last part, odd characters replaced."""
    base = Path((name or "").replace("\\", "/")).name
    stem, suffix = Path(base).stem, Path(base).suffix.lower()
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", stem).strip("._-")[:60] or default
    suffix = suffix if re.fullmatch(r"\.[a-z0-9]{1,5}", suffix or "") else ""
    return stem + suffix
