"""`make bench`: run every benchmark (or those named: `python bench/run_all.py hierarchy pqmf`)
and rewrite their sections of docs/benchmarks.md from their results, keeping the rest."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import OUT, ROOT, machine  # noqa: E402

BENCHES = [
    ("convert", "bench_convert.py",
     "Conversion throughput: `musicrgan convert` (process pool, one core per worker) against "
     "the original approach, a sequential loop of one ffmpeg process per file, on the same "
     "real recordings (Wesnoth orchestral tracks, Ogg Vorbis 44.1 kHz stereo → 16 kHz mono). "
     "Target: 1.7x on 2 cores. Note that the baseline is not single-threaded: the ffmpeg 9 "
     "CLI runs demuxer, decoder, filters and muxer on separate threads, so one ffmpeg keeps "
     "about 1.5 cores busy (half of it in futex hand-offs). Pinning each worker, and its "
     "ffmpeg, to one core is what makes two files at once pay; across runs on this machine "
     "the speedup ranged 1.55x-1.73x."),
    ("stream", "bench_stream.py",
     "Streaming windows (tf.data, random offsets, 1 s windows at 16 kHz, batch 32): windows "
     "per second and peak resident memory of the whole process, on a converted corpus and on "
     "the same corpus repeated 10 times."),
    ("generate", "bench_generate.py",
     "Generation speed at each family's default config, 16 kHz, 3 songs in one batch: our "
     "compiled loop (LSTM state carried inside one tf.while_loop; XLA for sample-lstm) "
     "against the original approach on the same model, one `predict` call per step over a "
     "sliding window of previous input. Targets: sample-lstm at least 1x real time per "
     "stream and at least 100x the original. x_realtime = seconds of audio per second."),
    ("metrics", "bench_metrics.py",
     "The tempo descriptor of `musicrgan evaluate` on 64 labelled loops of the built-in "
     "corpus (seed 7, not the corpus the prior was tuned on): share of loops within 2 % of "
     "the labelled BPM, ours (log-normal prior at 120 BPM half an octave wide, score adds "
     "the autocorrelation at twice the lag) against librosa's default approach (prior one "
     "octave wide, no double-period term) on the same onset envelopes; and descriptor "
     "speed in seconds of audio per second. No reference implementation (librosa, essentia) "
     "is installed on this machine, so the baseline is that approach re-run in our code."),
    ("train_gan", "bench_train_gan.py",
     "lstm-gan training steps per second (the demo's family, default config, batch 16 of 1 s "
     "windows with their beat grids) through `fit` on a synthesized corpus: today's train "
     "step against the step before the speed work of issue 9 (baseline_commit's "
     "lstm_gan.py, loaded from git into the same process). Changes: one generator pass "
     "serves both updates, and the discriminator hears real, fake and wrong-clock audio in "
     "one batch. Below: "
     "the pieces of today's step timed alone, and the data pipeline's batches per second "
     "(far above the step rate: the data is not what the step waits for)."),
    ("train_fft", "bench_train_fft.py",
     "fft-lstm training throughput on the converted orchestral corpus (block 512, 16 blocks, "
     "hidden 256, no overlap as in the original): the streaming pipeline against the "
     "original generator (whole file read and every block's FFT recomputed per example, "
     "Python copy loops), same model, same fit call."),
    ("two_stage", "bench_two_stage.py",
     "Compress-then-generate speed at the default configs, 16 kHz, 10 s of audio, untrained "
     "weights (speed does not depend on them): vqvae encoding and decoding at batch 1 (x "
     "real time, and over the same networks called eagerly, as vqvae did before 2026-11-30), "
     "and code-prior sampling plus vqvae decoding per stream with 1 and 4 "
     "streams in a batch. Baseline for sampling, same process and model: a sampler without the key/value "
     "cache, which runs the whole prefix through the model for every new code. Targets "
     "(issue 10): decoding at least 30x real time, sampling plus decoding at least 5x per "
     "stream, encoding for the latent cache at least 100x."),
    ("inversion", "bench_inversion.py",
     "spec-vae's inversion from log-mel frames back to audio, on the demo corpus's 12 test "
     "loops, each loop's own frames inverted and compared with it (Fréchet distance of "
     "log-mel frames as `evaluate` computes it; mean absolute error of the frames): "
     "non-negative least-squares magnitudes and fast Griffin-Lim (momentum 0.99) against "
     "the clipped pseudo-inverse and the 1984 Griffin-Lim, same frames, same 32 iterations, "
     "same process. x_realtime: seconds of audio inverted per second, the 12 loops at once."),
    ("hierarchy", "bench_hierarchy.py",
     "The hierarchical generator's speed at the default configs, 16 kHz, 10 s of audio, "
     "untrained weights, batch 1: wave-vae decoding, whole generation through latent-vae "
     "(draw, trajectory, decoding) and through latent-diffusion at its default step count "
     "(DDIM from noise, decoding), x real time. Baseline, same process: latent-vae "
     "generation (diffusion_over_latent_vae). Targets (issue 11): decoding at least 30x, "
     "whole generation at least 10x, latent diffusion at least 2x."),
    ("pqmf", "bench_pqmf.py",
     "wave-vae's multi-band front end (a PQMF filter bank, bands 16, strides [2, 2, 2], the "
     "transposed-convolution decoder) against the samples with the same decoder (`samples`: "
     "the default before 2026-12-07, 32 channels, strides [4, 4, 4, 2], 16 latent channels) "
     "and against today's default (`default`: vqvae's network on the samples, 16 channels, "
     "strides [4, 8, 4], the istft decoder), all 128x, untrained, same process: parameters, "
     "seconds per training step through `fit` (batch 8 of 16384 samples), encoding and "
     "decoding 10 s at batch 1 (x real time), and ratios over `samples`. What each "
     "reconstructs after 3 training minutes: docs/hierarchical.md."),
    ("vqvae_heads", "bench_vqvae_heads.py",
     "vqvae's decoder: the default since 2026-12-06 (`decoder: istft`, Vocos's head: the "
     "decoder's layers at the code rate, one 256-point spectrum per code, an inverse STFT; "
     "spectral convergence in the loss) against the one before (`decoder: conv`, "
     "transposed convolutions up to the samples), 64x, untrained, same process: "
     "parameters, seconds per training "
     "step through `fit` (batch 8 of 16384 samples; each config timed twice in turn, the "
     "faster kept: one config's step time moved by up to 2x between calls), encoding and "
     "decoding 10 s at batch 1 (x real time), and ratios over the one before. What each "
     "reconstructs: docs/compare.md, \"vqvae at the code rate\"."),
    ("epochs", "bench_epochs.py",
     "Stalls between training epochs: wall seconds per epoch through `fit` (wave-vae's "
     "default config, untrained, many short epochs of 2 steps of batch 8 and 1 validation "
     "batch, a synthesized corpus), the datasets as `musicrgan.data` makes them (tf.data's "
     "autotuning off) against the way before (autotuning on, endless generators cut by "
     "`Dataset.take`) and the way before without autotuning, same process. A stall: an "
     "epoch longer than twice the median (docs/architecture.md, \"Idle seconds between "
     "epochs\")."),
    ("distribute", "bench_distribute.py",
     "Two local CPU workers (`train --strategy multi-worker`, batch 8 each, one intra-op "
     "thread each) against one process (`--strategy default`, batch 16) on the same global "
     "batch of 16, fft-lstm and sample-lstm at their default configs, 4 epochs of 30 steps, "
     "seed 1, a synthesized corpus of 16 loops: training windows per second over epochs 2-4 "
     "(validation included, as history.csv times an epoch) and both loss curves. Then each "
     "family's trainable parameters and the gradient megabytes a worker sends and receives "
     "per step in a ring all-reduce over 2 workers (2 (N-1)/N x 4 bytes x parameters)."),
]


PREAMBLE = ("# Benchmarks\n\nEvery speed figure is a ratio against a baseline measured in the "
            "same run on the same machine. Each section says what it measures, then the run "
            "of its table (day, machine) and notes kept from earlier runs.\n")
RUN_LINE = "Run by `make bench` on "
EARLIER = "Notes from earlier runs (their figures may differ from the table above):"


def table(result: dict) -> str:
    rows = ["| measure | value |", "| --- | --- |"]
    rows += [f"| {k} | {v} |" for k, v in result.items()]
    return "\n".join(rows)


def split_page(page: str) -> tuple[str, dict[str, str]]:
    """The page's preamble and its sections' bodies by name (the text after "## name")."""
    parts = page.split("\n## ")
    sections = {}
    for part in parts[1:]:
        name, _, body = part.partition("\n")
        sections[name.strip()] = body
    return parts[0].rstrip("\n") + "\n", sections


def hand_notes(body: str, what: str) -> list[str]:
    """The paragraphs of a section that someone wrote by hand (dated runs, what they meant):
    all but its description, its table and the line naming the run that made it."""
    notes = []
    for paragraph in body.split("\n\n"):
        paragraph = paragraph.strip()
        if (paragraph and paragraph != what and not paragraph.startswith(RUN_LINE)
                and not paragraph.startswith("|") and paragraph not in (EARLIER, "(not run yet)")):
            notes.append(paragraph)
    return notes


def rewrite(page: str, results: dict[str, dict], when: str, machine_line: str) -> str:
    """The page with the sections of `results` (bench name → its result) made anew from
    them; every other section as it was, and every section's hand-written notes kept: a
    bench run alone, or on a fresh clone without the others' results, loses nothing."""
    preamble, sections = split_page(page) if page else (PREAMBLE, {})
    lines = [preamble]
    for name, _, what in BENCHES:
        body = sections.get(name)
        if name in results:
            notes = hand_notes(body or "", what)
            body = "\n\n".join([what, f"{RUN_LINE}{when}; {machine_line}.",
                                  table(results[name])] + ([EARLIER] if notes else []) + notes)
        elif body is None:
            body = f"{what}\n\n(not run yet)\n"
        lines.append(f"## {name}\n\n{body.strip(chr(10))}\n")
    return "\n".join(lines)


def main() -> None:
    only = set(sys.argv[1:])
    ran = [name for name, _, _ in BENCHES if not only or name in only]
    for name, script, _ in BENCHES:
        if name in ran:
            subprocess.run([sys.executable, str(ROOT / "bench" / script)], check=True)
    results = {name: json.loads((OUT / f"{name}.json").read_text()) for name in ran}
    machine_line = ", ".join(f"{k} {v}" for k, v in machine().items())
    page = ROOT / "docs" / "benchmarks.md"
    old = page.read_text() if page.exists() else ""
    page.write_text(rewrite(old, results, str(date.today()), machine_line))
    print(f"wrote {page}")


if __name__ == "__main__":
    main()
