"""A training run is a folder:

    config.yaml      family, corpus, rate and the family's config, frozen at `train new`
    model.keras      the last complete epoch (weights and optimizer state)
    best.keras       the epoch with the best validation loss
    state.json       epochs done, the history of every epoch, early-stopping counters
    history.csv      every epoch of every session, rewritten from state.json
    tensorboard/     TensorBoard logs
    samples/         audio written at chosen epochs

An epoch is committed in one atomic step: the model goes to `.pending-E.keras`, then
`state.json` (which says E is done and holds its history row) is replaced, then the
pending file is renamed to `model.keras`. Killed anywhere in between, `continue` finds
either the old state (the pending file is discarded and epoch E runs again) or the new one
(the rename is finished). Each finished epoch is in the history exactly once.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import logging
import math
import os
import shutil
import sys
import time
import warnings
from pathlib import Path

import yaml

from . import audio, import_tensorflow
from .audio import atomic_write_text
from .data import CorpusError, WindowSource, corpus_rate, window_dataset
from .locks import FolderBusy, folder_lock

log = logging.getLogger("musicrgan")
CONFIG, MODEL, BEST, STATE, HISTORY = "config.yaml", "model.keras", "best.keras", "state.json", "history.csv"


class RunError(Exception):
    """A run folder that cannot be used as asked; the message says what to do."""


class DamagedState(RunError):
    """state.json cannot be read; it can be rebuilt from history.csv (`repair`)."""


class DamagedCheckpoint(RunError):
    """model.keras cannot be loaded while best.keras can be gone on from."""


class TrainingStopped(Exception):
    """Training ended for a reason the user must hear (NaN loss); exit status 1."""


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C during training; the message says which epoch the run keeps."""


def writable_folder(path: Path, what: str = "folder") -> Path:
    """An output folder that exists or is made now and can be written to; else RunError
    (a path that is a file, one under /proc, no permission). `what` names it in the message."""
    folder = Path(path)
    if folder.exists() and not folder.is_dir():
        raise RunError(f"{what} {folder} is a file, not a folder: choose another path")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RunError(f"cannot create {what} {folder}: {exc.strerror}") from None
    if not os.access(folder, os.W_OK):
        raise RunError(f"cannot write to {what} {folder}: permission denied")
    return folder


def load_run_config(run: Path) -> dict:
    path = Path(run) / CONFIG
    if not Path(run).is_dir():
        raise RunError(f"run folder not found: {run} (start one with `musicrgan train new`)")
    if not path.is_file():
        raise RunError(f"{run} is not a run folder: it has no {CONFIG}")
    damaged = f"{path} is damaged"
    try:
        config = yaml.safe_load(path.read_text())
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise RunError(f"{damaged} (not valid YAML: {str(exc).splitlines()[0]}): "
                       "restore it, or start a new run") from None
    if not isinstance(config, dict) or not {"family", "data", "rate"} <= set(config):
        raise RunError(f"{damaged}: it must map family, data, rate and config; restore it, "
                       "or start a new run")
    if not isinstance(config["rate"], int) or config["rate"] <= 0:
        raise RunError(f"{damaged}: rate must be a positive whole number of Hz, "
                       f"got {config['rate']!r}")
    config["path"] = str(path)
    return config


def _valid_state(state) -> bool:
    number = (int, float)
    return (isinstance(state, dict) and isinstance(state.get("epochs_done"), int)
            and state["epochs_done"] >= 0 and isinstance(state.get("history"), list)
            and len(state["history"]) == state["epochs_done"]
            and all(isinstance(row, dict) for row in state["history"])
            and (state.get("best") is None or isinstance(state["best"], number))
            and isinstance(state.get("wait", 0), int))


def read_state(run: Path) -> dict:
    path = Path(run) / STATE
    if not path.exists():
        return {"epochs_done": 0, "history": [], "best": None, "wait": 0, "sessions": 0}
    try:
        state = json.loads(path.read_text())
    except (ValueError, OSError) as exc:
        state = exc
    if not _valid_state(state):
        raise DamagedState(f"{path} is damaged (it says which epochs are done)")
    return state


def state_from_history(run: Path) -> dict:
    """state.json rebuilt from history.csv (which holds a row per committed epoch)."""
    try:
        rows = read_history(run)
    except (OSError, csv.Error, UnicodeDecodeError) as exc:
        raise RunError(f"cannot rebuild {Path(run) / STATE}: {Path(run) / HISTORY} cannot be "
                       f"read either ({exc}); start a new run") from None
    family = make_family(load_run_config(run))
    history, best, wait = [], None, 0
    phase = family.phases[0] if family.phases else None
    for i, row in enumerate(rows, 1):
        values = {}
        for key, text in row.items():
            try:
                values[key] = int(text) if key in ("epoch", "session", "steps") else float(text)
            except (TypeError, ValueError):
                continue  # an empty cell: the key is not in this epoch's row
        if values.get("epoch") != i:
            raise RunError(f"cannot rebuild {Path(run) / STATE}: {Path(run) / HISTORY} is "
                           f"damaged too (row {i} is not epoch {i}); start a new run")
        if row.get("phase") in family.phases:
            values["phase"] = row["phase"]
            if row["phase"] != phase:  # each phase has its own best
                phase, best, wait = row["phase"], None, 0
        history.append(values)
        monitored = values.get(family.monitor)
        if monitored is not None and (best is None or monitored < best):
            best, wait = monitored, 0
        else:
            wait += 1
    state = {"epochs_done": len(history), "history": history, "best": best, "wait": wait,
             "sessions": max((r.get("session", 0) for r in history), default=0)}
    return state | ({"phase": phase} if phase else {})


def make_family(run_config: dict):
    from .models import get_family
    from .models.base import ConfigError
    where = run_config.get("path", CONFIG)
    try:
        cls = get_family(run_config["family"])
    except KeyError as exc:
        raise RunError(f"{where}: {exc.args[0]}") from None
    try:
        config = cls.Config.from_dict(run_config.get("config"))
    except (ConfigError, TypeError) as exc:
        raise RunError(f"{where}: {exc}") from None
    return cls(config, run_config["rate"])


def load_model(path: Path, family):
    """Load a `.keras` checkpoint with safe_mode on, compiled for training."""
    import_tensorflow()
    import keras
    import zipfile
    if not path.is_file():
        raise RunError(f"no checkpoint at {path}")
    if not zipfile.is_zipfile(path):
        raise RunError(f"{path} is not a Keras model file")
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Skipping nested container")
            model = keras.saving.load_model(path, safe_mode=True, compile=True)
    except Exception as exc:
        message = str(exc).splitlines()[0][:200]
        if "could not be loaded" in message:
            raise RunError(f"{path} holds weights that do not fit today's {family.name} (made "
                           f"by an earlier version of musicrgan?): train a new run") from exc
        raise RunError(f"{path} could not be loaded as a model: {message}") from exc
    if getattr(model, "optimizer", None) is None:
        family.compile(model)
    return model


def _save_model(model, path: Path) -> None:
    tmp = path.with_name(f".{path.stem}.tmp.keras")
    model.save(tmp)
    os.replace(tmp, path)


def _recover(run: Path, state: dict) -> None:
    """Finish or discard what a killed process left half-done."""
    done = state["epochs_done"]
    for pending in sorted(run.glob(".pending-*.keras")):
        epoch = int(pending.stem.split("-")[1].split(".")[0])
        if epoch == done:
            os.replace(pending, run / MODEL)  # state was committed; finish the rename
        else:
            pending.unlink()
    for tmp in run.glob(".*.tmp*"):
        tmp.unlink()
    write_history_csv(run, state)


def write_history_csv(run: Path, state: dict) -> None:
    rows = state["history"]
    keys = ["epoch", "session"]
    for row in rows:
        keys += [k for k in row if k not in keys]
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=keys, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(run / HISTORY, out.getvalue())


def read_history(run: Path) -> list[dict]:
    with open(Path(run) / HISTORY, newline="") as fh:
        return list(csv.DictReader(fh))


def patience_exhausted(state: dict, patience: int) -> bool:
    """Early stopping's condition: `patience` epochs without a better validation loss."""
    return bool(patience) and state["wait"] >= patience


def training_seconds(state: dict) -> float:
    """Wall seconds spent in committed epochs, over every session of the run."""
    return float(sum(row.get("seconds", 0.0) for row in state["history"]))


def _make_callback(run: Path, family, state: dict, session: int, budget_seconds: float | None,
                   replicas: int = 1, epochs: int | None = None):
    import keras

    class RunCallback(keras.callbacks.Callback):
        """Commits each finished epoch; stops on NaN; early stopping; audio samples."""

        def __init__(self):
            super().__init__()
            self.nan_at = None
            self.stopped_early = False

            # seconds an epoch spends after its last training step (validation, callbacks):
            # the budget keeps room for them
            self.closing_seconds = 0.0

        def on_train_begin(self, logs=None):
            self.session_steps, self.session_start = 0, training_seconds(state)
            # the rates the schedule scales: the config's, not the optimizers' (a checkpoint
            # saves the scaled rate it stopped at)
            c = family.config
            self.base_rates = [(self.model.optimizer, c.learning_rate)]
            critic = getattr(self.model, "critic_optimizer", None)
            if critic is not None:
                self.base_rates.append(
                    (critic, getattr(c, "critic_learning_rate", c.learning_rate)))

        def on_epoch_begin(self, epoch, logs=None):
            self.started = time.time()
            self.steps = 0

        def elapsed(self):
            """Training seconds of the run so far, counting the epoch under way and the
            room its closing needs."""
            return (training_seconds(state) + time.time() - self.started
                    + self.closing_seconds)

        def on_train_batch_begin(self, batch, logs=None):
            if family.config.lr_schedule != "linear":
                return
            # the share of this session's training done: of its budget (what is left of the
            # run's total) or of its epochs
            done = 0.0
            if budget_seconds and budget_seconds > self.session_start:
                done = ((self.elapsed() - self.session_start)
                        / (budget_seconds - self.session_start))
            if epochs:
                steps = epochs * (self.params.get("steps") or family.config.steps_per_epoch)
                done = max(done, self.session_steps / steps)
            for optimizer, rate in self.base_rates:
                optimizer.learning_rate = rate * max(0.0, 1.0 - done)

        def on_train_batch_end(self, batch, logs=None):
            self.session_steps += 1
            self.steps = batch + 1
            self.last_step_end = time.time()
            values = [v for k, v in (logs or {}).items() if "loss" in k]
            if any(not math.isfinite(float(v)) for v in values):
                self.nan_at = (self.epoch_number, batch + 1)
                self.model.stop_training = True
            if budget_seconds is not None and self.elapsed() >= budget_seconds:
                # the budget ends training mid-epoch: the epoch is committed with the steps
                # it made (history's `steps`), so a slow machine keeps to the time promised
                self.model.stop_training = True

        @property
        def epoch_number(self):
            return state["epochs_done"] + 1

        def on_epoch_end(self, epoch, logs=None):
            logs = {k: float(v) for k, v in (logs or {}).items()}
            if self.nan_at or any(not math.isfinite(v) for v in logs.values()):
                self.nan_at = self.nan_at or (self.epoch_number, None)
                self.model.stop_training = True
                return  # never commit a poisoned epoch
            number = self.epoch_number
            self.closing_seconds = time.time() - getattr(self, "last_step_end", time.time())
            phase = {"phase": state["phase"]} if "phase" in state else {}
            row = {"epoch": number, "session": session, **phase,
                   **{k: round(v, 6) for k, v in logs.items()},
                   "steps": self.steps, "seconds": round(time.time() - self.started, 2),
                   **({"replicas": replicas} if replicas > 1 else {})}
            monitored = logs.get(family.monitor)
            improved = monitored is not None and (state["best"] is None or monitored < state["best"])
            if improved:
                _save_model(self.model, run / BEST)
            pending = run / f".pending-{number}.keras"
            self.model.save(pending)
            new_state = {**state, "epochs_done": number, "history": state["history"] + [row],
                         "best": monitored if improved else state["best"],
                         "wait": 0 if improved else state["wait"] + 1}
            atomic_write_text(run / STATE, json.dumps(new_state, indent=1))
            os.replace(pending, run / MODEL)
            state.update(new_state)
            write_history_csv(run, state)
            c = family.config
            if c.sample_every and number % c.sample_every == 0:
                self.write_sample(number)
            if monitored is not None and patience_exhausted(state, c.patience):
                self.stopped_early = True
                self.model.stop_training = True
            if budget_seconds is not None and training_seconds(state) >= budget_seconds:
                self.model.stop_training = True

        def write_sample(self, number):
            from .models.base import GenerationRequest, Generates
            if not isinstance(family, Generates):
                return
            request = family.checked(GenerationRequest(
                n=1, seconds=family.config.sample_seconds, seed=number))
            clip = family.generate(self.model, request)
            audio.write_wav(run / "samples" / f"epoch_{number:04d}.wav", clip[0], family.rate)

    return RunCallback()


class Run:
    """A run folder, opened once: its family, config, corpus, state and history, and its
    models (last and best), each loaded once and kept until its file changes. Every command
    works through one; `Run.create` makes a new one, `train` trains it."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.config = load_run_config(self.path)
        self.family = make_family(self.config)
        self._models: dict = {}
        self._upstream: Run | None = None

    def __repr__(self):
        return f"Run({str(self.path)!r}, family={self.family.name!r})"

    @classmethod
    def create(cls, path: str | os.PathLike, family_name: str, data: str | os.PathLike | None,
               config_overrides: dict | None = None,
               upstream: str | os.PathLike | None = None) -> "Run":
        """A new run folder with its frozen config.yaml: the family's config (defaults,
        then the overrides), the corpus and its rate, and for a second stage its upstream
        run (with the fingerprint of the checkpoint it trains on; data defaults to the
        upstream's corpus, encoded into the upstream's latent cache now). The corpus is
        checked against the family before the folder exists, so a refused one leaves
        nothing that blocks a retry."""
        path = Path(path)
        if path.exists() and not path.is_dir():
            raise RunError(f"run folder {path} is a file, not a folder: choose another path")
        if (path / CONFIG).exists():
            raise RunError(f"{path} already holds a run; continue it or choose another folder")
        from .models import get_family
        from .models.base import ConfigError
        try:
            config = get_family(family_name).Config.from_dict(config_overrides)
        except KeyError as exc:
            raise RunError(exc.args[0]) from None
        except (ConfigError, TypeError) as exc:
            raise RunError(f"config: {exc}") from None
        from .models.base import OnLatents
        family_cls = get_family(family_name)
        first = None
        if issubclass(family_cls, OnLatents):
            if upstream is None:
                raise RunError(f"{family_name} trains on the latents of an upstream run: "
                               "name one (e.g. a vqvae run)")
            first = Run(upstream)
            data = data or first.data
        elif upstream is not None:
            raise RunError(f"{family_name} trains on audio, not on an upstream run's latents")
        if data is None:
            raise RunError("a corpus is needed")
        run_config = {"family": family_name, "data": str(Path(data).resolve()),
                      "rate": corpus_rate(data), "config": config.to_dict()}
        family = make_family(run_config)
        cache = None
        if first is not None:
            why = family.accepts(first.family)
            if why:
                raise RunError(f"{family_name} cannot train on {first.path}: {why}")
            if run_config["rate"] != first.rate:
                raise RunError(f"the corpus {data} is at {run_config['rate']} Hz and the "
                               f"upstream {first.path} at {first.rate} Hz: use its corpus")
            from .latents import build_cache, fingerprint
            checkpoint = first.checkpoint("best")
            if not checkpoint.is_file():
                raise RunError(f"the upstream run {first.path} has no trained model yet")
            run_config["upstream"] = {"run": str(first.path.resolve()),
                                      "checkpoint": checkpoint.name,
                                      "fingerprint": fingerprint(checkpoint)}
            cache = build_cache(first, run_config["data"], run_config["upstream"]["fingerprint"],
                                views=family.config.shifted_views)
            family.attach(first.family, first.model("best"))
        _datasets(family, run_config["data"], 0, cache)
        writable_folder(path, "run folder")
        try:
            with folder_lock(path, "creating"):
                if (path / CONFIG).exists():
                    raise RunError(f"{path} already holds a run")
                atomic_write_text(path / CONFIG, yaml.safe_dump(run_config, sort_keys=False))
        except FolderBusy as exc:
            raise RunError(str(exc)) from None
        return cls(path)

    @property
    def data(self) -> str:
        return self.config["data"]

    @property
    def rate(self) -> int:
        return self.family.rate

    @property
    def state(self) -> dict:
        return read_state(self.path)

    @property
    def history(self) -> list[dict]:
        return self.state["history"]

    def checkpoint(self, which: str = "best") -> Path:
        """best.keras (falling back to model.keras before a best exists), model.keras
        ("last"), or for a family that trains in phases the best of a finished phase
        ("best-PHASE": best-PHASE.keras)."""
        finished = [f"best-{p}" for p in self.family.phases
                    if (self.path / f"best-{p}.keras").is_file()]
        if which not in ("best", "last", *finished):
            raise RunError(f"checkpoint must be one of {', '.join(['best', 'last', *finished])}"
                           f" for {self.path}, got {which!r}")
        if which.startswith("best-"):
            return self.path / f"{which}.keras"
        best = self.path / BEST
        return best if which == "best" and best.exists() else self.path / MODEL

    def upstream(self) -> "Run | None":
        """The upstream run of a second stage (None for a first), checked to still hold the
        checkpoint this run was trained on, and attached to the family."""
        recorded = self.config.get("upstream")
        if not recorded:
            return None
        if self._upstream is None:
            from .latents import fingerprint
            where = Path(recorded["run"])
            if not (where / CONFIG).is_file():
                raise RunError(f"the upstream run {where} of {self.path} is missing: restore "
                               "it, or train a new run on another upstream")
            upstream = Run(where)
            checkpoint = upstream.path / recorded["checkpoint"]
            if not checkpoint.is_file() or fingerprint(checkpoint) != recorded["fingerprint"]:
                raise RunError(f"the upstream run {where} has changed since {self.path} was "
                               f"trained on it (its {recorded['checkpoint']} is another one): "
                               f"train a new {self.family.name} run on it")
            self.family.attach(upstream.family, upstream.model("best"))
            self._upstream = upstream
        return self._upstream

    def latent_cache(self) -> Path | None:
        """The folder of the upstream's latents this run trains on (built where missing)."""
        upstream = self.upstream()
        if upstream is None:
            return None
        from .latents import build_cache
        return build_cache(upstream, self.data, self.config["upstream"]["fingerprint"],
                           views=self.family.config.shifted_views)

    def model(self, which: str = "best"):
        """The checkpoint's model, loaded once and kept while its file is unchanged (for a
        second stage, with its upstream checked and attached)."""
        self.upstream()
        path = self.checkpoint(which)
        if not path.is_file():
            raise RunError(f"{self.path} has no trained model yet ({path.name} is missing): "
                           "train it first")
        key = (path.name, path.stat().st_mtime_ns)
        if key not in self._models:
            self._models = {k: m for k, m in self._models.items() if k[0] != path.name}
            self._models[key] = load_model(path, self.family)
        return self._models[key]

    def train(self, epochs: int, *, budget_seconds: float | None = None,
              start_from: str | None = None, repair: bool = False,
              verbose: int | None = None, phase: str | None = None,
              strategy: str = "default") -> dict:
        """Train `epochs` more epochs (or until the budget: the run's total training time,
        every session's, validation included, mid-epoch if need be). start_from="best"
        goes on from best.keras (when model.keras is damaged), "last" from model.keras;
        None: the last, except that a new phase starts from the best of the phase it ends;
        repair=True rebuilds a damaged state.json from history.csv first; `phase` moves a
        family that trains in phases on to a later one (its last best kept as
        best-PHASE.keras); `strategy` names the
        devices (distribute.py: default, mirrored, multi-worker). The folder is locked
        meanwhile: a second process gets RunError at once. Returns the state."""
        from .distribute import is_chief, make_strategy, private_copy
        devices = make_strategy(strategy)
        if not is_chief(devices):  # a worker of a multi-worker session that is not its chief
            with private_copy(self.path) as copy:
                try:
                    return Run(copy)._train(epochs, budget_seconds, start_from, repair,
                                            verbose, phase, devices)
                except (RunError, TrainingStopped) as exc:  # named as the run the user knows
                    raise type(exc)(str(exc).replace(str(copy), str(self.path))) from None
        return self._train(epochs, budget_seconds, start_from, repair, verbose, phase, devices)

    def _train(self, epochs, budget_seconds, start_from, repair, verbose, phase, devices):
        try:
            with folder_lock(self.path, "training"):
                state = _train_locked(self, epochs, verbose, budget_seconds, start_from,
                                      repair, phase, devices)
        except FolderBusy as exc:
            raise RunError(str(exc)) from None
        except OSError as exc:
            raise RunError(f"cannot write to the run folder {self.path}: {exc.strerror}") \
                from None
        self._models.clear()
        return state


def _datasets(family, data: str, epochs_done: int, cache: Path | None = None, devices=None):
    """The training and validation datasets of a run, mapped to the family's examples:
    windows of the corpus's audio, or for a second stage of its latent cache; under a
    tf.distribute strategy (`devices`), batches of batch_size windows for each replica, and
    in a multi-worker session each worker's windows from its own files."""
    c = family.config
    if devices is None:
        return _split_datasets(family, data, epochs_done, cache, c.batch_size)
    from .distribute import is_multi_worker
    replicas = devices.num_replicas_in_sync
    # under a strategy Keras draws one batch before training, to build the model: a pass of
    # its own (-1), so that the epochs see the windows they would see without one
    if not is_multi_worker(devices):
        return _split_datasets(family, data, epochs_done, cache, c.batch_size * replicas,
                               first_pass=-1)
    # every worker takes the same number of steps: a pass of the whole split
    steps = c.steps_per_epoch or max(1, _distinct_windows(family, data, cache)
                                     // (c.batch_size * replicas))

    def train(context):
        shard = (context.input_pipeline_id, context.num_input_pipelines)
        return _split_datasets(family, data, epochs_done, cache, c.batch_size, first_pass=-1,
                               shard=shard, steps=steps)[0]

    def validation(context):  # the same windows on every worker: the mean is the split's
        return _split_datasets(family, data, epochs_done, cache, c.batch_size)[1]

    return (devices.distribute_datasets_from_function(train),
            devices.distribute_datasets_from_function(validation))


def _distinct_windows(family, data: str, cache: Path | None) -> int:
    if cache is not None:
        from .latents import LatentSource
        return LatentSource(cache, "train", family.window(),
                            offsets=_view_offsets(family)).count_distinct()
    return WindowSource(data, "train", family.window()).count_distinct()


def _view_offsets(family) -> list[int]:
    from .latents import view_offsets
    return view_offsets(family.upstream_family.latent_hop(), family.config.shifted_views)


def _split_datasets(family, data: str, epochs_done: int, cache: Path | None, batch: int, *,
                    first_pass: int = 0, shard: tuple[int, int] | None = None,
                    steps: int | None = None):
    """The training and validation datasets in batches of `batch` (see _datasets); with
    `shard`, training windows from that share of the files, `steps` batches a pass."""
    tf = import_tensorflow()
    c = family.config
    steps = steps or c.steps_per_epoch
    seed = None if c.seed is None else c.seed + epochs_done
    if cache is not None:
        from .latents import latent_dataset
        beats = None
        if family.uses_beats:
            beats = (data, family.upstream_family.latent_hop(), family.upstream_family.rate)
        train_ds = latent_dataset(cache, "train", family.window(), batch, steps=steps,
                                  seed=seed, beats=beats, first_pass=first_pass, shard=shard,
                                  offsets=_view_offsets(family))
        try:
            val_ds = latent_dataset(cache, "test", family.window(), batch, training=False,
                                    steps=c.validation_steps, beats=beats)
        except CorpusError as exc:
            raise RunError(f"validation needs the corpus's test split: {exc}") from exc
        return (train_ds.map(family.examples, num_parallel_calls=tf.data.AUTOTUNE),
                val_ds.map(family.examples))
    window, beats = family.window(), family.uses_beats
    train_ds = window_dataset(data, "train", window, batch, steps=steps, seed=seed,
                              beats=beats, first_pass=first_pass, shard=shard)
    try:
        val_ds = window_dataset(data, "test", window, batch, training=False,
                                steps=c.validation_steps, beats=beats)
    except CorpusError as exc:
        raise RunError(f"validation needs the corpus's test split: {exc}") from exc
    return (train_ds.map(family.examples, num_parallel_calls=tf.data.AUTOTUNE),
            val_ds.map(family.examples))


def stands_against(family, state: dict, phase: str | None) -> str:
    """Where a run (its state) stands against one phase of a budget plan
    (Family.budget_phases): "past" it (in a later phase), "before" it (in an earlier one:
    training on means entering it) or "in" it. What compare and the demo ask of each phase
    they train through."""
    phases = family.phases
    if phase is None or not phases:
        return "in"
    current = phases.index(state.get("phase", phases[0]))
    wanted = phases.index(phase)
    return "past" if current > wanted else "before" if current < wanted else "in"


def _next_phase(run: Path, family, state: dict, phase: str | None) -> str | None:
    """The phase to enter now (None: stay), or RunError for one the run cannot enter."""
    if phase is None:
        return None
    phases = family.phases
    if not phases:
        raise RunError(f"{family.name} trains in one phase: --phase is for families that "
                       "train in phases (wave-vae, vqvae)")
    if phase not in phases:
        raise RunError(f"{family.name}'s phases are {', '.join(phases)}, not {phase!r}")
    where = stands_against(family, state, phase)
    if where == "past":
        raise RunError(f"{run} has moved on to its {state['phase']} phase and cannot go back "
                       f"to {phase}: train a new run for that")
    if where == "before" and state["epochs_done"] == 0:
        raise RunError(f"{run} has not trained its {phases[0]} phase yet: train it first "
                       "(`train continue` without --phase)")
    return phase if where == "before" else None


def _keep_best(run: Path, state: dict) -> Path:
    """The finished phase's best kept as best-PHASE.keras (once: a second entry, after one
    that was killed, finds it kept; best.keras may by then hold a model of the next phase,
    saved before its epoch was committed)."""
    finished = run / f"best-{state['phase']}.keras"
    if not finished.is_file():
        source = run / BEST if (run / BEST).is_file() else run / MODEL
        tmp = finished.with_name(f".{finished.name}.tmp")
        shutil.copyfile(source, tmp)
        os.replace(tmp, finished)
    return finished


def _enter_phase(run: Path, family, model, state: dict, phase: str):
    """Keep the finished phase's best as best-PHASE.keras and start the next phase's best
    and patience afresh. Nothing is committed until its first epoch: killed before then,
    the run is still in the last phase."""
    finished = _keep_best(run, state)
    log.info(f"{run}: the {state['phase']} phase's best is kept as {finished.name}; "
             f"entering the {phase} phase")
    state.update(phase=phase, best=None, wait=0)
    return family.enter_phase(model, phase)


# the run this process is training and its state (kept current by the epoch callback), for
# cli.py's Ctrl-C handler, which exits from inside model.fit rather than unwinding out of it
_training_now: tuple[Path, dict] | None = None


def _kept(run: Path, state: dict) -> str:
    return (f"{run} keeps epoch {state['epochs_done']} (the last complete one); continuing "
            "the run goes on from there")


def interrupted_training() -> str | None:
    """What a Ctrl-C now leaves of the run being trained ("RUN keeps epoch N ..."), or None
    when this process is not training one."""
    return None if _training_now is None else _kept(*_training_now)


def _train_locked(opened: Run, epochs: int, verbose, budget_seconds, start_from: str,
                  repair: bool, phase: str | None = None, devices=None) -> dict:
    run, family, run_config = opened.path, opened.family, opened.config
    if repair:
        state = state_from_history(run)
        atomic_write_text(run / STATE, json.dumps(state, indent=1))
    state = read_state(run)
    _recover(run, state)
    if family.phases:
        state.setdefault("phase", family.phases[0])
    phase = _next_phase(run, family, state, phase)
    c = family.config
    data = run_config["data"]

    import_tensorflow()
    import keras
    if c.seed is not None:
        keras.utils.set_random_seed(c.seed + state["epochs_done"])
    from .averaging import WeightAverage
    from .distribute import is_multi_worker, keras_multi_worker_fixes
    replicas = devices.num_replicas_in_sync if devices is not None else 1
    train_ds, val_ds = _datasets(family, data, state["epochs_done"], opened.latent_cache(),
                                 devices)

    # under a strategy, the model's variables (and the optimizer's) are made in its scope
    with devices.scope() if devices is not None else contextlib.nullcontext():
        if state["epochs_done"] == 0:
            model = family.build()
        elif phase is not None and start_from is None:
            # the finished phase's best: what it keeps as best-PHASE.keras, so that the
            # latents a second stage learned from that checkpoint are the next phase's
            # (its last epoch can be a budget's stub, further from the corpus)
            model = load_model(_keep_best(run, state), family)
        elif start_from == "best":
            model = load_model(run / BEST, family)
        else:
            try:
                model = load_model(run / MODEL, family)
            except RunError as exc:
                if not (run / BEST).is_file():
                    raise
                raise DamagedCheckpoint(str(exc)) from None
        if phase is not None:
            model = _enter_phase(run, family, model, state, phase)
    session = state.get("sessions", 0) + 1
    state["sessions"] = session
    callback = _make_callback(run, family, state, session, budget_seconds, replicas, epochs)
    tensorboard = keras.callbacks.TensorBoard(log_dir=str(run / "tensorboard"), write_graph=False)
    # first: the callbacks after it measure and keep the averaged weights
    averaging = [WeightAverage(c.weight_average)] if c.weight_average else []
    start = state["epochs_done"]
    if verbose is None:
        verbose = 1 if sys.stdout.isatty() else 2
    tf = import_tensorflow()
    # a worker of a multi-worker session that stops (killed, unreachable) ends the session
    lost_worker = (tf.errors.UnavailableError, tf.errors.AbortedError,
                   tf.errors.DeadlineExceededError, tf.errors.CancelledError) \
        if is_multi_worker(devices) else ()
    global _training_now
    try:
        _training_now = (run, state)
        with warnings.catch_warnings(), keras_multi_worker_fixes(devices):
            # each pass of our datasets is exactly one epoch long; Keras notices the end
            warnings.filterwarnings("ignore", message="Your input ran out of data")
            model.fit(train_ds, validation_data=val_ds, initial_epoch=start,
                      epochs=start + epochs,
                      callbacks=[*averaging, *family.callbacks(data), callback, tensorboard],
                      verbose=verbose, shuffle=False)
    except KeyboardInterrupt:
        raise TrainingInterrupted(_kept(run, state)) from None
    except lost_worker as exc:
        lines = [line.strip() for line in (exc.message or "").splitlines() if line.strip()]
        # TensorFlow's first line is "Graph execution error:"; the cause is further down
        reason = next((line for line in lines if "aborted by" in line),
                      lines[-1] if lines else type(exc).__name__)
        raise TrainingStopped(
            f"the multi-worker session ended: a worker stopped ({reason}); {run} keeps epoch "
            f"{state['epochs_done']} (the last complete one): start every worker again with "
            "`train continue`") from None
    finally:
        _training_now = None
    if callback.nan_at:
        epoch, batch = callback.nan_at
        where = f"epoch {epoch}" + (f", batch {batch}" if batch else "")
        raise TrainingStopped(
            f"loss became NaN or infinite at {where}; {run / MODEL} keeps epoch "
            f"{state['epochs_done']}, the last good one. Lower learning_rate and continue")
    state["stopped_early"] = callback.stopped_early
    return state
