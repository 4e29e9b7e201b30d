"""The `musicrgan` command. Each subcommand is a function whose docstring is its help.

A user's mistake (a missing folder, a bad number) prints one line and exits 2; only our own
bugs print a traceback.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from pathlib import Path

import musicrgan  # noqa: F401  (sets TensorFlow's quiet logging before anything imports it)
from musicrgan.data import CorpusError
from musicrgan.locks import FolderBusy
from musicrgan.models.base import RequestError
from musicrgan.runs import (DamagedCheckpoint, DamagedState, RunError, TrainingStopped,
                            writable_folder)


MAX_EPOCHS = 10_000  # with --minutes and no --epochs, the time ends training


class UsageError(Exception):
    """A mistake in what the user asked for; exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, not argparse's usage block
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _positive_int(text):
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def _positive_float(text):
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def _fraction(text):
    value = float(text)
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"must be in [0, 1), got {text}")
    return value


def cmd_convert(args) -> int:
    """Convert audio files (wav, flac, ogg, mp3, m4a, opus, ...) into a corpus folder of mono
    wavs: OUT/train, OUT/test, OUT/manifest.jsonl and OUT/failures.jsonl. Re-running converts
    only new or changed files."""
    from .corpus.convert import convert
    for src in args.sources + (args.test or []):
        if not Path(src).exists():
            raise UsageError(f"input not found: {src}")
    writable_folder(Path(args.out), "corpus folder")
    summary = convert([Path(s) for s in args.sources], Path(args.out), rate=args.rate,
                      test_sources=[Path(s) for s in args.test] if args.test else None,
                      test_fraction=args.test_fraction, min_seconds=args.min_seconds,
                      jobs=args.jobs, retry_failed=args.retry_failed,
                      progress=not args.quiet, shard=args.shard)
    print(summary.line(Path(args.out)))
    return 0 if summary.converted or summary.unchanged else 1


def cmd_corpus(args) -> int:
    """Work on corpus folders: `corpus merge OUT PART...` joins corpora converted apart
    (`convert --shard I/N` on N machines) into OUT: wavs linked or copied, never converted
    again; manifests and failures merged, each file's split kept. Re-running finishes an
    interrupted merge."""
    from .corpus.merge import MergeError, merge
    for part in args.parts:
        if not Path(part).is_dir():
            raise UsageError(f"corpus folder not found: {part}")
    writable_folder(Path(args.out), "corpus folder")
    try:
        summary = merge(Path(args.out), [Path(p) for p in args.parts])
    except MergeError as exc:
        raise UsageError(str(exc)) from None
    print(summary.line(Path(args.out)))
    return 0


def _shard(text):
    """I/N, 1 <= I <= N."""
    try:
        index, count = (int(x) for x in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"write the shard as I/N (e.g. 1/4), got {text!r}") \
            from None
    if not 1 <= index <= count:
        raise argparse.ArgumentTypeError(f"shard {text}: I is from 1 to N")
    return index, count


def cmd_synth(args) -> int:
    """Synthesize the built-in corpus: beat-aligned techno and acid loops (kick, claps or
    snares, hats, an acid bass line), deterministic for a seed, labels in the manifest."""
    from .corpus.synth import synth_corpus
    writable_folder(Path(args.out), "corpus folder")
    entries = synth_corpus(Path(args.out), loops=args.loops, seconds=args.seconds,
                           rate=args.rate, seed=args.seed, test_fraction=args.test_fraction,
                           progress=not args.quiet)
    print(f"{len(entries)} loops in {args.out} "
          f"({sum(e['seconds'] for e in entries) / 60:.1f} min at {args.rate} Hz)")
    return 0


def cmd_info(args) -> int:
    """Show what a corpus folder holds: files and minutes per split, rate, labels."""
    from .corpus.manifest import load_manifest, read_jsonl, FAILURES
    from .data import corpus_files, CorpusError
    corpus = Path(args.corpus)
    unreadable = []
    try:
        splits = {s: corpus_files(corpus, s, unreadable) for s in ("train", "test")}
    except CorpusError as exc:
        raise UsageError(str(exc)) from exc
    for split, files in splits.items():
        seconds = sum(f.frames / f.rate for f in files)
        rates = sorted({f.rate for f in files})
        print(f"{split:5s}: {len(files):4d} files, {seconds / 60:7.2f} min, rate {rates or '-'}")
    entries = load_manifest(corpus)
    synth = [e for e in entries if e.get("source") == "synth"]
    if synth:
        bpms = [e["bpm"] for e in synth]
        keys = sorted({f"{e['key']} {e['scale']}" for e in synth})
        print(f"synth loops: {len(synth)}, bpm {min(bpms)}-{max(bpms)}, "
              f"{len(keys)} keys/scales: {', '.join(keys[:6])}{' ...' if len(keys) > 6 else ''}")
        for e in synth[:args.show]:
            bass = " ".join(n or "." for n in e["bass_pattern"])
            print(f"  {e['path']}: {e['bpm']} bpm, {e['key']} {e['scale']}, kick "
                  f"{e['kick_pattern']}, {e['backbeat']}, {e['bass_wave']} bass: {bass}")
    if unreadable:
        print(f"unreadable: {len(unreadable)} wav(s), skipped by training and evaluation:")
        for path, reason in unreadable[:args.show]:
            print(f"  {path}: {reason}")
    failures = read_jsonl(corpus / FAILURES)
    if failures:
        print(f"failures: {len(failures)} (see {corpus / FAILURES})")
    return 0


def _load_config_file(path: str | None, sets: list[str] | None) -> dict:
    import yaml
    values = {}
    if path:
        if not Path(path).is_file():
            raise UsageError(f"config file not found: {path}")
        try:
            values = yaml.safe_load(Path(path).read_text()) or {}
        except yaml.YAMLError as exc:
            raise UsageError(f"{path} is not valid YAML: {str(exc).splitlines()[0]}") from exc
        if not isinstance(values, dict):
            raise UsageError(f"{path} must hold a mapping of config keys to values")
    for item in sets or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise UsageError(f"--set takes KEY=VALUE, got {item!r}")
        values[key.strip()] = yaml.safe_load(value)
    return values


CHECKPOINT_HELP = ("best (default), last, or best-PHASE: the best of a finished phase of a "
                   "family that trains in phases (wave-vae: best-autoencoder)")


def cmd_train(args) -> int:
    """Train a model: `train new RUN --model FAMILY --data CORPUS` starts a run folder,
    `train continue RUN` resumes it from its last complete epoch. History is kept across
    sessions in RUN/history.csv."""
    from .runs import Run, training_seconds
    epochs = args.epochs or (MAX_EPOCHS if args.minutes else 10)
    chief = True
    if args.strategy == "multi-worker":
        if args.minutes:
            raise UsageError("--minutes is not taken with --strategy multi-worker (the workers "
                             "would have to agree on the step to stop at): give --epochs")
        from .distribute import is_chief, join_workers
        chief = is_chief(join_workers())  # before anything else TensorFlow does
    if args.action == "new" and not chief:
        # the chief creates the run; this worker trains a private copy of it
        from .distribute import wait_for_run
        wait_for_run(Path(args.run))
        run = Run(Path(args.run))
    elif args.action == "new":
        if not args.model or not (args.data or args.upstream):
            raise UsageError("train new needs --model FAMILY and --data CORPUS (or, for a "
                             "second stage, --upstream RUN)")
        overrides = _load_config_file(args.config, args.set)
        if args.start_from or args.repair:
            raise UsageError("--from and --repair are for train continue")
        if args.phase:
            raise UsageError("--phase is for train continue: a new run starts in its "
                             "family's first phase")
        if (Path(args.run) / "config.yaml").exists():
            raise UsageError(f"{args.run} already holds a run; use `musicrgan train continue "
                             f"{args.run}` or choose another folder")
        run = Run.create(Path(args.run), args.model, args.data, overrides,
                         upstream=args.upstream)
    else:
        if args.model or args.data or args.config or args.set or args.upstream:
            raise UsageError("train continue takes the run's frozen config; leave out "
                             "--model, --data, --upstream, --config and --set")
        run = Run(Path(args.run))
    budget = None
    if args.minutes:  # more minutes on top of what the run has already trained
        budget = args.minutes * 60 + (training_seconds(run.state) if not args.repair else 0.0)
    state = run.train(epochs, budget_seconds=budget, start_from=args.start_from,
                      repair=args.repair, phase=args.phase, strategy=args.strategy)
    if state.get("stopped_early"):
        print(f"early stop: {run.family.monitor} has not improved for "
              f"{run.family.config.patience} epochs")
    last = state["history"][-1] if state["history"] else {}
    summary = ", ".join(f"{k} {v:.4g}" for k, v in last.items() if "loss" in k)
    print(f"{args.run}: {state['epochs_done']} epochs done ({summary}); "
          f"history in {Path(args.run) / 'history.csv'}")
    return 0


def cmd_generate(args) -> int:
    """Generate new audio from a trained run: n songs in one batch, written as wavs at the
    model's sample rate. Same seed, same output."""
    from .generate import generate, interpolate
    from .models.base import GenerationRequest
    if args.between:
        if args.prime or args.prime_from_corpus or args.match_loudness:
            raise UsageError("--between makes clips between two files: leave out --prime, "
                             "--prime-from-corpus and --match-loudness")
        for path in interpolate(Path(args.run), Path(args.out), *args.between, args.steps,
                                checkpoint=args.checkpoint):
            print(path)
        return 0
    controls = {name: getattr(args, name) for name in _controls()}  # (given or None)
    request = GenerationRequest(n=args.n, seconds=args.seconds, seed=args.seed,
                                temperature=args.temperature, controls=controls)
    paths = generate(Path(args.run), Path(args.out), request, prime_file=args.prime,
                     prime_from_corpus=args.prime_from_corpus, window=args.window,
                     checkpoint=args.checkpoint, match_loudness=args.match_loudness,
                     progress=not args.quiet)
    for path in paths:
        print(path)
    return 0


def cmd_evaluate(args) -> int:
    """Measure a run's generated audio against held-out corpus audio: Fréchet distance on
    log-mel frames, descriptor distributions (loudness, centroid, flatness, onset rate,
    tempo), speed, and reconstruction metrics for families that encode audio. Writes
    RUN/eval.json and RUN/eval/*.wav."""
    from .evaluate import evaluate, format_table
    result = evaluate(Path(args.run), data=args.data, n=args.n, seconds=args.seconds,
                      seed=args.seed, checkpoint=args.checkpoint,
                      temperature=args.temperature, progress=not args.quiet)
    print(format_table(result))
    print(f"written: {Path(args.run) / 'eval.json'}")
    return 0


def cmd_reconstruct(args) -> int:
    """Encode and decode audio files with an autoencoder run (vqvae, spec-vae): DIR gets each original
    beside its reconstruction on DIR/index.html (with spectrograms), and the numbers per
    file (multi-resolution STFT distance, mel distance, SI-SDR, ViSQOL) in
    DIR/reconstruct.json."""
    from .reconstruct import reconstruct
    results = reconstruct(Path(args.run), args.files, Path(args.out), args.checkpoint)
    for name, scores in results.items():
        print(f"{name}: " + ", ".join(f"{k} {'-' if v is None else format(v, '.3g')}"
                                      for k, v in scores.items()))
    print(f"listen: {Path(args.out) / 'index.html'}")
    return 0


def cmd_analyze(args) -> int:
    """What the latent space of a run with continuous latents (wave-vae, latent-vae) holds:
    each dimension's Spearman correlation with the level and spectral centroid of the frame
    it encodes, PCA fidelity (directions for 80/90/95/99 % of the variance), and loudness,
    centroid and a smoothness score along paths between pairs of corpus loops, with their
    audio: DIR/analysis.json and DIR/index.html."""
    from .analyze import analyze
    from .runs import Run
    run = Run(Path(args.run))
    data = args.data or run.data
    if not Path(data).is_dir():
        raise UsageError(f"corpus not found: {data}")
    result = analyze(run, data, Path(args.out), pairs=args.pairs, steps=args.steps,
                     seconds=args.seconds, checkpoint=args.checkpoint)
    print("PCA: " + ", ".join(f"{k} of the variance in {v} directions"
                              for k, v in result["pca"]["dimensions_for"].items()))
    strongest = max(result["correlations"], key=lambda c: abs(c["level"] or 0))
    print(f"level: strongest in dimension {strongest['dimension']} (Spearman "
          f"{strongest['level']:+.2f})")
    print("smoothness along paths: " + ", ".join(
        f"{k} {v:.2f}" for k, v in result["mean_smoothness"].items()))
    print(f"listen: {Path(args.out) / 'index.html'}")
    return 0


def cmd_serve(args) -> int:
    """Serve the studio: a page and an HTTP API to make corpora, train, generate,
    reconstruct, evaluate, compare and listen, over the corpora (DIR/data), runs (DIR/runs)
    and results (DIR/results) of one home folder. Long actions are jobs, kept in
    DIR/.studio/jobs.sqlite."""
    import ipaddress
    import secrets

    import uvicorn

    from .app.server import create_app
    home = Path(args.home)
    if home.exists() and not home.is_dir():
        raise UsageError(f"--home {home} is a file, not a folder")
    token = args.token
    if token == "auto":
        token = secrets.token_urlsafe(16)
    try:
        local = ipaddress.ip_address(args.host).is_loopback
    except ValueError:
        local = args.host == "localhost"
    if not local and not token:
        logging.getLogger("musicrgan").warning(
            f"serving on {args.host} without --token: anyone who can reach this machine can "
            "train, generate and read its results")
    app = create_app(home, token=token, max_upload_mb=args.max_upload_mb)
    address = f"http://{args.host}:{args.port}/" + (f"?token={token}" if token else "")
    print(f"musicrgan studio on {address} (home {home.resolve()}); Ctrl-C stops it",
          flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0


def cmd_export(args) -> int:
    """Write what a run's model is outside musicrgan: saved_model (TensorFlow), onnx
    (onnxruntime) or litert (the LiteRT / TensorFlow Lite interpreter). An autoencoder gives
    its encoder and decoder, code-prior one sampling step with its cache (and its upstream's
    decoder), lstm-gan its generator, the LSTM regressors their step with its state. DIR/export.json names
    each network's inputs and outputs and how to use them."""
    from .export import export
    manifest = export(Path(args.run), args.format, Path(args.out), args.checkpoint)
    for name, network in manifest["networks"].items():
        ins = ", ".join(f"{t['name']} {_shape(t)}" for t in network["inputs"])
        outs = ", ".join(f"{t['name']} {_shape(t)}" for t in network["outputs"])
        print(f"{Path(args.out) / network['file']}: {ins} -> {outs}")
    print(f"written: {Path(args.out) / 'export.json'}")
    return 0


def _shape(tensor: dict) -> str:
    dims = ["?" if d is None else str(d) for d in tensor["shape"]]
    return f"({', '.join(dims)}){'' if tensor['dtype'] == 'float32' else ' ' + tensor['dtype']}"


def cmd_compare(args) -> int:
    """Train each listed family on one corpus under the same time budget, evaluate each the
    same way, and write DIR/report.md and DIR/index.html (a table of metrics, speed,
    parameters and training time; loss curves; spectrograms; players for generated clips
    beside corpus clips). Re-running resumes."""
    from .compare import UPSTREAM_SHARE, compare, summary_table
    families = [f.strip() for f in args.models.split(",") if f.strip()]
    if not families:
        raise UsageError("--models needs at least one family, e.g. --models fft-lstm,lstm-gan")
    if not Path(args.data).is_dir():
        raise UsageError(f"corpus not found: {args.data}")
    if args.n < 2:  # before any training: evaluate needs a distribution
        raise UsageError(f"--n must be at least 2 (a distribution needs more than one clip), "
                         f"got {args.n}")
    configs = {}
    for item in args.config or []:
        family, sep, path = item.partition("=")
        if not sep:
            raise UsageError(f"--config takes FAMILY=FILE, got {item!r}")
        names = {stage for entry in families for stage in entry.split("+")} | {
            f"{entry}:{stage}" for entry in families if "+" in entry for stage in entry.split("+")}
        if family not in names:
            raise UsageError(f"--config names {family}, which is not in --models")
        configs[family] = _load_config_file(path, None)
    share = UPSTREAM_SHARE if args.upstream_share is None else args.upstream_share
    if not 0 < share < 1:
        raise UsageError(f"--upstream-share must be between 0 and 1, got {share:g}")
    summary = compare(args.data, families, args.budget_minutes, args.out, configs=configs,
                      n=args.n, seconds=args.seconds, seed=args.seed,
                      upstream_share=share, progress=not args.quiet)
    header, rows = summary_table(summary)
    print("\n" + "  ".join(f"{h}" for h in header[:3] + header[7:]))
    for row in rows[:len(families)]:
        print("  ".join(str(c) for c in row[:3] + row[7:]))
    print(f"best: {summary['best']}\nreport: {Path(args.out) / 'report.md'}\n"
          f"listen: {Path(args.out) / 'index.html'}")
    return 0


def _controls() -> dict:
    """Every family's own generation controls, by name: (control, families that have it).
    Each becomes a flag of `generate`; a run whose family lacks one refuses it."""
    from .models import FAMILIES, family_names
    from .models.base import Generates
    found = {}
    for name in family_names():
        cls = FAMILIES[name]
        if issubclass(cls, Generates):
            for control in cls(cls.Config(), 16000).controls():
                found.setdefault(control.name, (control, []))[1].append(name)
    return found


def flag(field: str) -> str:
    return f"--{field.replace('_', '-')}"


def build_parser(controls: bool = True) -> argparse.ArgumentParser:
    """The parser; controls=False leaves out generate's family controls (which import every
    family, and with them TensorFlow: seconds that convert, info and synth need not wait)."""
    parser = _Parser(prog="musicrgan", description=musicrgan.__doc__)
    parser.add_argument("--version", action="version", version=musicrgan.__version__)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    def add(name, func):
        summary = " ".join(func.__doc__.split()).split(": ")[0].split(". ")[0]
        p = sub.add_parser(name, help=summary, description=" ".join(func.__doc__.split()))
        p.set_defaults(func=func)
        return p

    p = add("convert", cmd_convert)
    p.add_argument("sources", nargs="+", metavar="SRC", help="audio files or folders (recursive)")
    p.add_argument("out", metavar="OUT", help="corpus folder to write")
    p.add_argument("--rate", type=_positive_int, default=16000, help="sample rate (Hz)")
    p.add_argument("--test", nargs="+", metavar="SRC",
                   help="explicit test inputs (then every SRC is train)")
    p.add_argument("--test-fraction", type=_fraction, default=0.1,
                   help="share of files hashed into test when --test is not given")
    p.add_argument("--min-seconds", type=float, default=1.0, help="shorter files are rejected")
    p.add_argument("--jobs", type=_positive_int, default=None, help="processes (default: cores)")
    p.add_argument("--retry-failed", action="store_true", help="try earlier failures again")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--shard", type=_shard, metavar="I/N",
                   help="convert only the I-th of N shards of the inputs (a hash of each "
                        "file's path), under the names and splits a whole convert gives: N "
                        "machines convert one collection, `corpus merge` joins the folders")

    p = add("corpus", cmd_corpus)
    p.add_argument("action", choices=["merge"])
    p.add_argument("out", metavar="OUT", help="corpus folder to write")
    p.add_argument("parts", nargs="+", metavar="PART", help="corpus folders to join")

    p = add("synth", cmd_synth)
    p.add_argument("out", metavar="OUT", help="corpus folder to write")
    p.add_argument("--loops", type=_positive_int, default=32)
    p.add_argument("--seconds", type=_positive_float, default=8.0,
                   help="least length of each loop (it lasts the fewest whole bars that reach it)")
    p.add_argument("--rate", type=_positive_int, default=16000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--test-fraction", type=_fraction, default=0.125)
    p.add_argument("--quiet", action="store_true")

    p = add("info", cmd_info)
    p.add_argument("corpus", metavar="CORPUS")
    p.add_argument("--show", type=int, default=5, help="loops to describe")
    p = add("train", cmd_train)
    p.add_argument("action", choices=["new", "continue"])
    p.add_argument("run", metavar="RUN", help="run folder")
    p.add_argument("--model", help="model family (new): sample-lstm, fft-lstm, lstm-gan, "
                                   "vqvae, code-prior, spec-vae, wave-vae")
    p.add_argument("--data", help="corpus folder (new; for a second stage, default: its "
                                  "upstream's)")
    p.add_argument("--upstream", metavar="RUN",
                   help="new, for a family that trains on another run's latents (code-prior "
                        "on a vqvae run): that run; the corpus is encoded by its best "
                        "checkpoint once, into RUN/latents/")
    p.add_argument("--config", help="YAML file of config keys (new); see configs/")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="one config key (new)")
    p.add_argument("--epochs", type=_positive_int,
                   help="epochs to run now (default 10, or no limit with --minutes)")
    p.add_argument("--from", dest="start_from", choices=["last", "best"],
                   help="continue: the checkpoint to go on from (default last: model.keras, "
                        "but a new --phase starts from the finished phase's best; best: "
                        "best.keras, e.g. when model.keras is damaged)")
    p.add_argument("--repair", action="store_true",
                   help="continue: rebuild a damaged state.json from history.csv first")
    p.add_argument("--phase", help="continue, for a family that trains in phases: move on "
                                   "to this one (wave-vae, vqvae: adversarial); the last phase's "
                                   "best is kept as RUN/best-PHASE.keras")
    p.add_argument("--minutes", type=_positive_float,
                   help="wall-clock minutes to train now, validation included: the last "
                        "epoch ends early if need be")
    p.add_argument("--strategy", choices=["default", "mirrored", "multi-worker"],
                   default="default",
                   help="devices: default (one), mirrored (every GPU of this machine, a "
                        "global batch of batch_size x GPUs), multi-worker (one process per "
                        "machine, the cluster in TF_CONFIG; every worker runs the same "
                        "command)")

    p = add("generate", cmd_generate)
    p.add_argument("run", metavar="RUN", help="run folder")
    p.add_argument("--out", default="results", help="output folder (default: results)")
    p.add_argument("--n", type=int, default=3, help="songs, generated in one batch")
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--prime", metavar="FILE", help="audio file whose start primes the model")
    p.add_argument("--prime-from-corpus", action="store_true",
                   help="prime with clips from the run's corpus (default for primed families)")
    p.add_argument("--window", type=float, help="seconds of priming audio")
    p.add_argument("--temperature", type=float,
                   help="sampling temperature (default: the family's, e.g. 1.0 for "
                        "sample-lstm, 0.3 for fft-lstm, 0.5 for lstm-gan, 1.15 for "
                        "code-prior)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--checkpoint", default="best", help=CHECKPOINT_HELP)
    p.add_argument("--between", nargs=2, metavar=("A", "B"),
                   help="instead of new songs: --steps clips along the path between the "
                        "latents of files A and B (a family that encodes into continuous "
                        "latents: wave-vae, latent-vae); as long as the shorter file")
    p.add_argument("--steps", type=int, default=5,
                   help="with --between: clips from A to B, both included (default 5)")
    for name, (control, families) in (_controls() if controls else {}).items():
        p.add_argument(f"--{name.replace('_', '-')}", dest=name, type=float,
                       metavar=control.metavar,
                       help=f"{control.help} ({', '.join(families)} runs only)")
    p.add_argument("--match-loudness", nargs="?", const="corpus", metavar="LUFS",
                   help="set each song's level, as mastering would: to the corpus's loudness "
                        "(median of its training audio), or to LUFS if given; peaks limited "
                        "to -1 dBFS. Default: the model's own level")
    p.add_argument("--quiet", action="store_true")

    p = add("compare", cmd_compare)
    p.add_argument("--data", required=True, help="corpus folder")
    p.add_argument("--models", required=True,
                   help="comma-separated families; FIRST+SECOND for a two-stage chain, "
                        "e.g. lstm-gan,vqvae+code-prior")
    p.add_argument("--budget-minutes", type=_positive_float, required=True,
                   help="training time per family (a chain's counts both stages and the "
                        "encoding between them)")
    p.add_argument("--upstream-share", type=float,
                   help="share of a chain's budget its first stage trains for (default 0.6)")
    p.add_argument("--out", required=True, help="report folder")
    p.add_argument("--config", action="append", metavar="FAMILY=FILE",
                   help="YAML config for one family, wherever it trains; A+B:B=FILE for one "
                        "stage of one chain (repeatable)")
    p.add_argument("--n", type=int, default=4, help="clips per family")
    p.add_argument("--seconds", type=_positive_float, default=4.0, help="length of each clip")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quiet", action="store_true")

    p = add("reconstruct", cmd_reconstruct)
    p.add_argument("run", metavar="RUN",
                   help="run folder of a family that encodes (vqvae, spec-vae, wave-vae, "
                        "latent-vae)")
    p.add_argument("files", nargs="+", metavar="FILE", help="audio files")
    p.add_argument("--out", default="results/reconstructions", help="output folder")
    p.add_argument("--checkpoint", default="best", help=CHECKPOINT_HELP)

    p = add("analyze", cmd_analyze)
    p.add_argument("run", metavar="RUN", help="run folder of a family with continuous latents "
                                              "(wave-vae, latent-vae)")
    p.add_argument("--data", help="corpus folder (default: the run's)")
    p.add_argument("--out", default="results/analysis", help="output folder")
    p.add_argument("--pairs", type=_positive_int, default=3, help="paths between loops")
    p.add_argument("--steps", type=_positive_int, default=9, help="clips along each path")
    p.add_argument("--seconds", type=_positive_float, default=4.0, help="length of each clip")
    p.add_argument("--checkpoint", default="best", help=CHECKPOINT_HELP)

    p = add("export", cmd_export)
    p.add_argument("run", metavar="RUN", help="run folder")
    p.add_argument("--format", required=True, choices=["saved_model", "onnx", "litert"])
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--checkpoint", default="best", help=CHECKPOINT_HELP)

    p = add("serve", cmd_serve)
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=_positive_int, default=8000)
    p.add_argument("--home", default=".", help="folder of data/, runs/ and results/ "
                                               "(default: the current folder)")
    p.add_argument("--token", help="require this bearer token on every request ('auto': "
                                   "make one and print the address with it)")
    p.add_argument("--max-upload-mb", type=_positive_float, default=100.0,
                   help="largest upload, per file (default 100)")

    p = add("evaluate", cmd_evaluate)
    p.add_argument("run", metavar="RUN", help="run folder")
    p.add_argument("--data", help="corpus whose test split is the reference (default: the run's)")
    p.add_argument("--n", type=int, default=8, help="clips to generate")
    p.add_argument("--seconds", type=_positive_float, default=4.0, help="length of each clip")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--temperature", type=float, help="default: the family's")
    p.add_argument("--checkpoint", default="best", help=CHECKPOINT_HELP)
    p.add_argument("--quiet", action="store_true")
    return parser


class _Formatter(logging.Formatter):
    """Warnings as `musicrgan: warning: ...`; notes (info) as they are."""

    def format(self, record):
        message = record.getMessage()
        return f"musicrgan: warning: {message}" if record.levelno >= logging.WARNING \
            else message


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever sys.stderr is when a message comes (not the one at start-up)."""

    def emit(self, record):
        self.stream = sys.stderr
        super().emit(record)


def main(argv: list[str] | None = None) -> int:
    logger = logging.getLogger("musicrgan")
    if not logger.handlers:  # library messages, one line each, on stderr
        handler = _StderrHandler()
        handler.setFormatter(_Formatter())
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
    argv = sys.argv[1:] if argv is None else argv
    words = [a for a in argv if not a.startswith("-")]
    parser = build_parser(controls=bool(words) and words[0] in ("generate",))
    args = parser.parse_args(argv)
    global _command
    _command = args.command
    previous = _catch_interrupts()
    try:
        return args.func(args)
    except RequestError as exc:  # the library names a request's field; here it is a flag
        print(f"musicrgan {args.command}: error: {flag(exc.field)} {exc.reason}",
              file=sys.stderr)
        return 2
    except DamagedState as exc:
        print(f"musicrgan {args.command}: error: {exc}: `musicrgan train continue {args.run} "
              "--repair` rebuilds it from history.csv", file=sys.stderr)
        return 2
    except DamagedCheckpoint as exc:
        print(f"musicrgan {args.command}: error: {exc}; `musicrgan train continue {args.run} "
              "--from best` goes on from best.keras", file=sys.stderr)
        return 2
    except (UsageError, CorpusError, RunError, FolderBusy) as exc:
        print(f"musicrgan {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except TrainingStopped as exc:  # e.g. a NaN loss: not a usage error, but no traceback
        print(f"musicrgan {args.command}: {exc}", file=sys.stderr)
        if _in_multi_worker_session():
            # a worker of the session is gone, and TensorFlow's collective executor keeps a
            # normal interpreter exit waiting for it forever (seen: 10 minutes and counting)
            sys.stdout.flush(), sys.stderr.flush()
            os._exit(1)
        return 1
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except BaseException as exc:
        if not (isinstance(exc, KeyboardInterrupt) or _interrupted):
            raise
        # A Ctrl-C that lands inside a C extension (TensorFlow tracing a function) can come
        # out as another error (SystemError, seen in a test); after a Ctrl-C, any error is
        # the interrupt's
        print(f"musicrgan {args.command}: interrupted"
              + (f": {exc}" if isinstance(exc, KeyboardInterrupt) and str(exc) else ""),
              file=sys.stderr)
        # Exit now: what matters is on disk (every write is atomic), and TensorFlow's
        # input-pipeline threads can keep a normal interpreter exit waiting forever (a
        # Ctrl-C in training printed its message, then hung for 10 minutes)
        sys.stdout.flush(), sys.stderr.flush()
        os._exit(130)
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)


_interrupted = False
_command = None


def _in_multi_worker_session() -> bool:
    distribute = sys.modules.get("musicrgan.distribute")
    return distribute is not None and distribute._joined is not None


def _on_interrupt(signum, frame):
    global _interrupted
    _interrupted = True
    runs = sys.modules.get("musicrgan.runs")
    training = runs.interrupted_training() if runs is not None else None
    if training is not None:
        # Exit from here, inside model.fit: what matters is on disk (every write is atomic),
        # and unwinding out of fit frees tf.data's iterators while their threads still run
        # (a Ctrl-C in training ended in a segfault once, in CI, instead of exit status 130)
        print(f"musicrgan {_command}: interrupted: {training}", file=sys.stderr)
        sys.stdout.flush(), sys.stderr.flush()
        os._exit(130)
    raise KeyboardInterrupt


def _catch_interrupts():
    """Note that a Ctrl-C came (then raise KeyboardInterrupt as Python would); returns the
    handler to put back, or None where signals cannot be set (not the main thread)."""
    try:
        return signal.signal(signal.SIGINT, _on_interrupt)
    except ValueError:
        return None


if __name__ == "__main__":
    sys.exit(main())
