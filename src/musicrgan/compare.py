"""`musicrgan compare`: train several families on one corpus under the same time budget,
evaluate each the same way, and write one report to read (report.md) and listen to
(index.html).

    DIR/runs/<family>/      each family's run folder (train continue works on it)
    DIR/runs/<A+B>/A, .../B a two-stage entry's two runs (B trained --upstream A)
    DIR/clips/<family>/     its evaluation clips, DIR/corpus/ held-out corpus clips
    DIR/img/                spectrograms and loss curves
    DIR/compare.json        every number of the report; "best" is the family with the
                            lowest Fréchet distance to the test split
    DIR/report.md, DIR/index.html

A two-stage entry `A+B` (e.g. `vqvae+code-prior`) gets the same budget as a family, counting
both stages and the encoding of the corpus between them: A trains for `upstream_share` of
it, the corpus is encoded into A's latent cache, and B trains for what is left.

Re-running the same command resumes: a run that has used its budget is only evaluated.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
import time
from pathlib import Path

import numpy as np

from . import audio, metrics
from .audio import atomic_write_text
from .data import corpus_clips
from .evaluate import evaluate
from .report import clip_card, loss_png, page, spectrogram_png, table
from .runs import (CONFIG, Run, RunError, patience_exhausted, read_history, stands_against,
                   training_seconds)

log = logging.getLogger("musicrgan")

MAX_EPOCHS = 10_000  # the budget, not an epoch count, ends a compare run
UPSTREAM_SHARE = 0.6  # of a chain's budget, what its first stage trains for


def compare(data: str | Path, families: list[str], budget_minutes: float, out: str | Path, *,
            configs: dict[str, dict] | None = None, n: int = 4, seconds: float = 4.0,
            seed: int = 0, upstream_share: float = UPSTREAM_SHARE, progress: bool = True) -> dict:
    """`families`: family names, or `A+B` for a second stage B over a first stage A. configs
    are keyed by family name (for that family wherever it trains), or by `A+B:B` for one
    stage of one chain (which wins)."""
    out, data = Path(out), Path(data)
    for entry in families:
        check_entry(entry)
    if len(set(families)) != len(families):
        raise RunError("the families to compare name one twice")
    if not 0 < upstream_share < 1:
        raise RunError(f"the upstream's share of a two-stage budget must be between 0 and 1, "
                       f"got {upstream_share:g}")
    longest = longest_clip_seconds(data, "test")
    if longest < seconds:
        log.info(f"note: the longest test file of {data} is {longest:g} s, shorter than "
                 f"clips of {seconds:g} s: comparing clips of {longest:g} s")
        seconds = longest
    budget = budget_minutes * 60.0
    results = {}
    configs = configs or {}
    for name in families:
        if "+" in name:
            run, spent_before = _train_chain(name, data, out, configs, budget, upstream_share,
                                             progress)
        else:
            run = _open(out / "runs" / name, name, data, configs)
            _train(run, name, budget, progress)
        log.info(f"== {name}: evaluating")
        results[name] = evaluate(run, data=str(data), n=n, seconds=seconds, seed=seed,
                                 progress=progress)
        if "+" in name:  # what both stages cost
            upstream, r = run.upstream(), results[name]
            upstream_seconds = training_seconds(upstream.state)
            r.update({"training_seconds": r["training_seconds"] + spent_before,
                      "parameters": r["parameters"] + int(upstream.model().count_params()),
                      "epochs": f"{upstream.state['epochs_done']}+{r['epochs']}",
                      "stages": {"upstream": str(upstream.path),
                                 "upstream_training_seconds": upstream_seconds,
                                 "encoding_seconds": round(spent_before - upstream_seconds, 1)}})
    best = min(results, key=lambda k: results[k]["frechet"]["generated_vs_test"])
    summary = {"data": str(data), "budget_minutes": budget_minutes, "n": n, "seconds": seconds,
               "seed": seed, "families": families, "best": best, "results": results}
    _write_report(out, data, summary)
    return summary


def check_entry(entry: str) -> None:
    """RunError unless `entry` is a family that trains on audio, or `A+B` with B a family
    that trains on the latents of A's."""
    from .models import family_names, get_family
    from .models.base import Encodes, OnLatents
    stages = entry.split("+")
    unknown = [f for f in stages if f not in family_names()]
    if unknown:
        raise RunError(f"unknown model famil{'ies' if len(unknown) > 1 else 'y'} "
                       f"{', '.join(unknown)}; choose from {', '.join(family_names())}")
    if len(stages) > 2:
        raise RunError(f"{entry}: a two-stage entry is FIRST+SECOND, e.g. vqvae+code-prior")
    if len(stages) == 1 and issubclass(get_family(entry), OnLatents):
        raise RunError(f"{entry} trains on an upstream's latents: name the chain, e.g. "
                       f"vqvae+{entry}")
    if len(stages) == 2 and not (issubclass(get_family(stages[0]), Encodes)
                                 and issubclass(get_family(stages[1]), OnLatents)):
        raise RunError(f"{entry}: the first stage must encode (vqvae, spec-vae) and the "
                       "second train on its latents (code-prior)")


def _open(folder: Path, family: str, data: Path, configs: dict, upstream: Run | None = None,
          entry: str | None = None):
    if (folder / CONFIG).exists():
        return Run(folder)
    config = dict(configs.get(f"{entry}:{family}", configs.get(family)) or {})
    # the budget ends training, as in the demo, unless the config asks for early stopping:
    # patience 5 on val_frechet, which swings by 10-15 between epochs, ended 30-minute
    # chains after 16-18 minutes (docs/compare.md, "A compare trains its whole budget")
    config.setdefault("patience", 0)
    return Run.create(folder, family, None if upstream else data, config,
                      upstream=upstream.path if upstream else None)


def _train(run: Run, label: str, budget: float, progress: bool) -> None:
    """Train until the run's budget is spent, through the phases its family plans for a
    budget (wave-vae's adversarial_share); at least one step in each, so there is a model
    to evaluate (a chain's upstream can leave its second stage no time)."""
    plan = run.family.budget_phases()
    for phase, until in plan:
        standing = stands_against(run.family, run.state, phase)
        if standing == "past":
            continue   # resumed past this phase
        entering = standing == "before"
        if run.state["epochs_done"] == 0 or entering or _needs_training(run, budget * until):
            spent = training_seconds(run.state)
            named = f" ({phase} phase)" if len(plan) > 1 else ""
            log.info(f"\n== {label}: training{named} for "
                     f"{max(budget * until - spent, 0) / 60:.2g} min")
            run.train(MAX_EPOCHS, budget_seconds=budget * until,
                      phase=phase if entering else None, verbose=None if progress else 0)


def _train_chain(entry: str, data: Path, out: Path, configs: dict, budget: float,
                 share: float, progress: bool) -> tuple[Run, float]:
    """Train both stages of `A+B` within one budget; the second stage's run and the seconds
    spent before it trained (the upstream's training and the corpus's encoding)."""
    first_name, second_name = entry.split("+")
    folder = out / "runs" / entry
    first = _open(folder / first_name, first_name, data, configs, entry=entry)
    second_folder = folder / second_name
    if not (second_folder / CONFIG).exists():  # the upstream is final once B exists
        _train(first, f"{entry} ({first_name})", budget * share, progress)
    encoding = folder / "encoding.json"
    if not (second_folder / CONFIG).exists():
        log.info(f"== {entry}: encoding the corpus with {first_name}")
        started = time.perf_counter()
        second = _open(second_folder, second_name, data, configs, upstream=first, entry=entry)
        atomic_write_text(encoding, json.dumps(
            {"seconds": round(time.perf_counter() - started, 1)}))
    else:
        second = Run(second_folder)
    spent = training_seconds(first.state) + json.loads(encoding.read_text())["seconds"]
    _train(second, f"{entry} ({second_name})", budget - spent, progress)
    return second, spent


def longest_clip_seconds(data: Path, split: str) -> float:
    """The longest clip a corpus split can give, in seconds (10 ms short of its longest
    file, rounded down to 10 ms: resampling to the metric rate can lose a sample)."""
    from .data import corpus_files
    files = corpus_files(data, split)
    if not files:
        raise RunError(f"{data} has no {split} split to compare against")
    return max(math.floor((f.frames / f.rate - 0.01) * 100) / 100 for f in files)


def _needs_training(run: Run, budget: float) -> bool:
    """A run trains on until its budget is spent, unless it stopped early."""
    state = run.state
    return training_seconds(state) < budget and not patience_exhausted(
        state, run.family.config.patience)


def _write_report(out: Path, data: Path, summary: dict) -> None:
    results = summary["results"]
    img = out / "img"
    corpus_dir = out / "corpus"
    reference = corpus_clips(data, "test", summary["seconds"], summary["n"])
    cards = {"corpus": []}
    for i, clip in enumerate(reference):
        wav = corpus_dir / f"test_{i + 1:02d}.wav"
        audio.write_wav(wav, clip, metrics.METRIC_RATE)
        spectrogram_png(clip, metrics.METRIC_RATE, img / f"corpus_{i + 1:02d}.png")
        cards["corpus"].append(clip_card(f"corpus/{wav.name}", f"img/corpus_{i + 1:02d}.png",
                                         f"corpus test clip {i + 1}"))
    histories = {}
    for name, r in results.items():
        run = Path(r["run"])
        histories[name] = read_history(run)
        target = out / "clips" / name
        if target.exists():
            shutil.rmtree(target)
        target.mkdir(parents=True)
        cards[name] = []
        for i, rel in enumerate(r["clips"]):
            wav = target / Path(rel).name
            shutil.copyfile(run / rel, wav)
            clip, rate = audio.load(wav, metrics.METRIC_RATE), metrics.METRIC_RATE
            png = f"img/{name}_{i + 1:02d}.png"
            spectrogram_png(clip, rate, out / png)
            cards[name].append(clip_card(f"clips/{name}/{wav.name}", png, f"{name} clip {i + 1}"))
    loss_png(histories, img / "loss.png")

    header, rows = summary_table(summary)
    best_row = list(results).index(summary["best"])
    lines = [f"# musicrgan compare: {', '.join(results)} on {data}", "",
             f"Each family trained for about {summary['budget_minutes']:g} minutes on this "
             f"machine (epochs end on the first one past the budget), then generated "
             f"{summary['n']} clips of {summary['seconds']:g} s (seed {summary['seed']}), "
             "compared with the corpus's test split at 16 kHz.", "",
             "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    lines += ["", f"**Best: {summary['best']}** (lowest Fréchet distance to the test split).", "",
              _legend(), "", "## Descriptors (generated mean ± std; corpus test mean ± std)", ""]
    for name, r in results.items():
        lines.append(f"- **{name}**: " + "; ".join(
            f"{k} {d['generated_mean']:.3g} ± {d['generated_std']:.2g} "
            f"(corpus {d['corpus_mean']:.3g} ± {d['corpus_std']:.2g}, {d['in_range']:.0%} in range)"
            for k, d in r["descriptors"].items()))
    lines += ["", "Loss curves: img/loss.png. Listen: index.html (open it in a browser).", ""]
    atomic_write_text(out / "report.md", "\n".join(lines))

    body = [f"<p>Corpus <code>{data}</code>; each family trained for about "
            f"{summary['budget_minutes']:g} min on this machine, then generated "
            f"{summary['n']} clips of {summary['seconds']:g} s. Best: "
            f"<b>{summary['best']}</b> (lowest Fréchet distance).</p>",
            table(header, rows, highlight=best_row), f"<p class=\"meta\">{_legend()}</p>",
            "<h2>Loss curves</h2>", '<img src="img/loss.png" alt="loss curves" '
            'style="max-width:100%">']
    for name in ["corpus", *results]:
        title = "Corpus (held-out test clips)" if name == "corpus" else name
        body += [f"<h2>{title}</h2>", f"<div class=\"clips\">{''.join(cards[name])}</div>"]
    atomic_write_text(out / "index.html", page("musicrgan compare", "\n".join(body)))
    atomic_write_text(out / "compare.json", json.dumps(summary, indent=1))


def summary_table(summary: dict) -> tuple[list[str], list[list]]:
    header = ["family", "Fréchet ↓", "descriptors in range", "loudness LUFS", "flatness",
              "onsets/s", "tempo strength", "speed (x real time)", "parameters",
              "training min", "epochs"]
    rows = []
    for name, r in summary["results"].items():
        d = r["descriptors"]
        rows.append([name, f"{r['frechet']['generated_vs_test']:.1f}",
                     f"{np.mean([v['in_range'] for v in d.values()]):.0%}",
                     f"{d['loudness']['generated_mean']:.1f}",
                     f"{d['flatness']['generated_mean']:.3g}",
                     f"{d['onset_rate']['generated_mean']:.2f}",
                     f"{d['tempo_strength']['generated_mean']:.2f}",
                     f"{r['speed']['realtime_factor_per_stream']:.2f}",
                     f"{r['parameters']:,}", f"{r['training_seconds'] / 60:.1f}", r["epochs"]])
    first = next(iter(summary["results"].values()))
    f, d = first["frechet"], first["descriptors"]
    train_shares = [v["train_in_range"] for v in d.values() if "train_in_range" in v]
    of_n = f.get("train_vs_test_of_n")
    rows.append(["corpus train split", _fmt(f["train_vs_test"]) + (
                     f" ({of_n['mean']:.1f} ± {of_n['std']:.1f} for {of_n['clips']})"
                     if of_n else ""),
                 f"{np.mean(train_shares):.0%}" if train_shares else "",
                 f"{d['loudness']['corpus_mean']:.1f}",
                 f"{d['flatness']['corpus_mean']:.3g}", f"{d['onset_rate']['corpus_mean']:.2f}",
                 f"{d['tempo_strength']['corpus_mean']:.2f}", "", "", "", ""])
    rows.append(["white noise", f"{f['noise_vs_test']:.1f}", "", "", "", "", "", "", "", "", ""])
    return header, rows


def _fmt(value):
    return "-" if value is None else f"{value:.1f}"


def _legend() -> str:
    return ("Fréchet: distance between Gaussians fitted to log-mel frames of generated and "
            "held-out corpus audio (lower is better; the corpus's own train split and white "
            "noise at corpus loudness give the scale; in brackets the train split's mean and "
            "spread over random sets of as many clips as each model made: fewer clips read "
            "further). Descriptors in range: share of "
            "generated clips inside the corpus's 5-95 % range, averaged over loudness, "
            "centroid, flatness, onset rate, tempo and tempo strength (the corpus row: the "
            "train split's own clips in that range, and corpus means). Speed: seconds of "
            "audio per wall second per stream, including building the compiled loop.")
