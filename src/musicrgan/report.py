"""Pages to listen to: spectrogram and loss-curve images, and the HTML around them.

Every page is a plain file that works when opened from disk (file://), with paths relative
to its folder. A few lines of script mark any player or image whose file is missing, so a
moved or deleted clip shows as such instead of as a silent player.
"""

from __future__ import annotations

import html
import json
import os
from pathlib import Path

import numpy as np

from .audio import atomic_write_text

LISTING = "index.json"
PAGE = "index.html"
SPECTROGRAMS = "spectrograms"

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 72em; padding: 0 1em;
       color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 2em; }
table { border-collapse: collapse; margin: 1em 0; }
th, td { border: 1px solid #ccc; padding: .3em .6em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
tr.best td { background: #eef8ee; }
.clips { display: flex; flex-wrap: wrap; gap: 1em; }
.clip { border: 1px solid #ddd; border-radius: 6px; padding: .6em; width: 30em; }
.clip img { width: 100%; display: block; margin: .4em 0; }
.clip audio { width: 100%; }
.meta { font-size: .85em; color: #555; }
.missing { color: #b00; font-weight: bold; }
"""

# Marks players and images whose file cannot be loaded; sets data-state="ok" on the others.
_CHECK_MEDIA = """
for (const el of document.querySelectorAll('audio, img')) {
  const mark = ok => {
    if (el.dataset.state) return;
    el.dataset.state = ok ? 'ok' : 'missing';
    if (!ok) {
      const note = document.createElement('div');
      note.className = 'missing';
      note.textContent = 'file missing: ' + el.getAttribute('src');
      el.after(note);
    }
  };
  if (el.tagName === 'IMG') {
    if (el.complete) mark(el.naturalWidth > 0);
    else { el.addEventListener('load', () => mark(true)); el.addEventListener('error', () => mark(false)); }
  } else {
    if (el.readyState >= 1) mark(true);
    else if (el.error) mark(false);
    else { el.addEventListener('loadedmetadata', () => mark(true)); el.addEventListener('error', () => mark(false)); }
  }
}
"""


def page(title: str, body: str) -> str:
    return (f"<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head>\n"
            f"<body>\n<h1>{html.escape(title)}</h1>\n{body}\n"
            f"<script>{_CHECK_MEDIA}</script>\n</body></html>\n")


def clip_card(wav: str, image: str | None, caption: str, meta: dict | None = None) -> str:
    """One clip: caption, player, spectrogram, settings. Paths relative to the page."""
    rows = "".join(f"<br>{html.escape(str(k))}: {html.escape(str(v))}"
                   for k, v in (meta or {}).items() if v is not None)
    img = (f'<img src="{html.escape(image)}" alt="spectrogram of {html.escape(wav)}">'
           if image else "")
    return (f'<div class="clip"><b>{html.escape(caption)}</b>'
            f'<audio controls preload="metadata" src="{html.escape(wav)}"></audio>{img}'
            f'<div class="meta">{html.escape(wav)}{rows}</div></div>')


def table(header: list[str], rows: list[list], highlight: int | None = None) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = ""
    for i, row in enumerate(rows):
        cells = "".join(f"<td>{html.escape(str(c))}</td>" for c in row)
        attrs = ' class="best"' if i == highlight else ""
        body += f"<tr{attrs}>{cells}</tr>\n"
    return f"<table><tr>{head}</tr>\n{body}</table>"


def save_figure(fig, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp)
    os.replace(tmp, path)


def pyplot():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def spectrogram_png(clip: np.ndarray, rate: int, path: Path, title: str | None = None) -> None:
    """Log-mel spectrogram in dB (80 dB range), time in seconds."""
    from .metrics import log_mel
    plt = pyplot()
    db = 10.0 * np.log10(np.exp(log_mel(clip, rate, n_mels=80)))
    db = np.maximum(db, db.max() - 80.0)
    fig, ax = plt.subplots(figsize=(6, 2.2), dpi=80)
    ax.imshow(db.T, origin="lower", aspect="auto", cmap="magma",
              extent=(0, len(clip) / rate, 0, db.shape[1]))
    ax.set_xlabel("seconds")
    ax.set_ylabel("mel band")
    if title:
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)


def loss_png(histories: dict[str, list[dict]], path: Path) -> None:
    """One panel per run: every logged loss against training minutes."""
    plt = pyplot()
    fig, axes = plt.subplots(1, max(1, len(histories)), figsize=(4.2 * max(1, len(histories)), 3),
                             dpi=80, squeeze=False)
    for ax, (name, rows) in zip(axes[0], histories.items()):
        minutes = np.cumsum([float(r.get("seconds") or 0) for r in rows]) / 60.0
        keys = [k for k in (rows[0] if rows else {}) if k.endswith("loss")]
        for key in keys:
            values = [float(r[key]) if r.get(key) not in (None, "") else np.nan for r in rows]
            ax.plot(minutes, values, marker=".", label=key)
        ax.set_title(name, fontsize=10)
        ax.set_xlabel("training minutes")
        if keys:
            ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)


def read_listing(folder: Path) -> list[dict]:
    """The clips folder/index.json lists; none if it is missing or damaged (a damaged
    listing is rebuilt from the clips added next)."""
    try:
        clips = json.loads((Path(folder) / LISTING).read_text())["clips"]
        return [c for c in clips if isinstance(c, dict) and "file" in c]
    except (OSError, ValueError, KeyError, TypeError):
        return []


def update_listing(folder: Path, entries: list[dict], sources: dict | None = None) -> Path:
    """Add clips (dicts with at least "file") to folder's index.json, draw their spectrograms,
    and rewrite folder/index.html with every clip whose file is still there.

    sources: where to read a new clip from when it is not yet at its name (a staged file that
    the caller renames into place once the listing is written); such clips are listed."""
    sources = sources or {}
    import soundfile as sf
    folder = Path(folder)
    listing_path = folder / LISTING
    known = {e["file"]: e for e in read_listing(folder)}
    for entry in entries:
        clip, rate = sf.read(sources.get(entry["file"], folder / entry["file"]),
                             dtype="float32")
        image = f"{SPECTROGRAMS}/{Path(entry['file']).stem}.png"
        spectrogram_png(clip, rate, folder / image)
        known[entry["file"]] = {**entry, "image": image}
    clips = [e for e in known.values()
             if (folder / e["file"]).exists() or e["file"] in sources]
    clips.sort(key=lambda e: e["file"])
    clips.sort(key=lambda e: e.get("created", ""), reverse=True)  # stable: newest batch first
    atomic_write_text(listing_path, json.dumps({"clips": clips}, indent=1))
    cards = []
    for e in clips:
        meta = {k: e.get(k) for k in ("run", "family", "epochs", "checkpoint", "seconds",
                                      "temperature", "seed", "bpm", "loudness_target",
                                      "prime", "window", "position", "created")}
        cards.append(clip_card(e["file"], e.get("image"), Path(e["file"]).stem, meta))
    body = (f"<p>{len(clips)} clips, newest first. Written by <code>musicrgan generate</code>; "
            "each clip's settings are below its spectrogram.</p>"
            f"<div class=\"clips\">{''.join(cards)}</div>")
    atomic_write_text(folder / PAGE, page(f"musicrgan: {folder.name or 'results'}", body))
    return folder / PAGE
