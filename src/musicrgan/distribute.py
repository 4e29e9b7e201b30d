"""The device strategy a training session runs under (`train ... --strategy NAME`).

- `default`: TensorFlow's default, one device.
- `mirrored`: `tf.distribute.MirroredStrategy` over every GPU of this machine (on a machine
  without one, its CPU as a single replica). Each replica takes `batch_size` windows of a
  global batch of `batch_size x replicas`; Keras scales each replica's loss by 1/replicas and
  sums the gradients, so a step is one step on the global batch. The learning rate stays
  what the config says: with more replicas the batch grows and the gradient's noise
  shrinks; raising `learning_rate` with the replica count (the linear scaling rule, Goyal et
  al. 2017) is the user's choice, made with `--set learning_rate=...`.
- `multi-worker`: `tf.distribute.MultiWorkerMirroredStrategy`, one process per machine,
  the cluster and this process's place in it in `TF_CONFIG`. Every worker runs the same
  `train` command on the same run folder path (a shared file system, or the same path on
  each machine); the chief (task `chief`, else worker 0) alone writes the run folder, the
  others train a private copy of it that is thrown away. Each worker reads its own files of
  the corpus (or of the latent cache); the global batch is `batch_size x replicas` as for
  `mirrored`. Keras 3.15's `fit` needs two fixes to run under this strategy
  (`keras_multi_worker_fixes`, keras-team/keras#20585). A worker that dies ends the
  session on the others at their next step (when its connection closes; at the latest
  after `WORKER_TIMEOUT` seconds); the run keeps its last committed epoch, and
  `train continue` on every worker goes on from there. A time budget (`--minutes`) is not
  taken: the workers would have to agree on the step to stop at.

Every family trains under every strategy. Keras's own training step replicates as it is; a
family's own step gives each replica's share of the loss, seeds its noise by replica, keeps
its statistics in step across replicas and logs what every replica agrees on
(modules/replicas.py: the EMA codebooks count the global batch, lstm-gan's averaged
generator follows once for all replicas, the tempo range spans every replica's batch)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

from . import import_tensorflow
from .locks import alive
from .runs import RunError

STRATEGIES = ("default", "mirrored", "multi-worker")


WORKER_TIMEOUT = 300  # seconds a worker waits for the others at a step before giving up


def make_strategy(name: str):
    """The tf.distribute strategy for `name` (None for default)."""
    if name not in STRATEGIES:
        raise RunError(f"strategy must be one of {', '.join(STRATEGIES)}, got {name!r}")
    if name == "default":
        return None
    if name == "multi-worker":
        return join_workers()
    tf = import_tensorflow()
    devices = ([d.name for d in tf.config.list_logical_devices("GPU")]
               or [d.name for d in tf.config.list_logical_devices("CPU")])
    return tf.distribute.MirroredStrategy(devices)


def cluster() -> dict:
    """TF_CONFIG, checked: RunError saying what is missing."""
    text = os.environ.get("TF_CONFIG")
    if not text:
        raise RunError("--strategy multi-worker needs TF_CONFIG: the workers' host:port list "
                       "and this one's place in it (see the README's \"Training on more than "
                       "one device\")")
    try:
        config = json.loads(text)
        workers = config["cluster"].get("worker", []) + config["cluster"].get("chief", [])
        task = config["task"]
        task_type, index = task["type"], int(task["index"])
    except (ValueError, KeyError, TypeError, AttributeError):
        raise RunError("TF_CONFIG must be JSON like {\"cluster\": {\"worker\": [\"host1:port\", "
                       "\"host2:port\"]}, \"task\": {\"type\": \"worker\", \"index\": 0}}") from None
    if task_type not in config["cluster"] or not 0 <= index < len(config["cluster"][task_type]):
        raise RunError(f"TF_CONFIG's task {task_type} {index} is not in its cluster")
    if len(workers) < 2:
        raise RunError("TF_CONFIG names one worker: --strategy multi-worker is for two or more "
                       "(on one machine, use --strategy default or mirrored)")
    return config


def local_cluster(count: int) -> list[dict]:
    """The TF_CONFIG of each of `count` workers on this machine (free ports of localhost),
    worker 0 (the chief) first: multi-worker on one machine, for a try, a test or a bench."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("localhost", 0))
        workers = [f"localhost:{s.getsockname()[1]}" for s in sockets]
    finally:
        for s in sockets:
            s.close()
    return [{"cluster": {"worker": workers}, "task": {"type": "worker", "index": i}}
            for i in range(count)]


_joined = None  # the process's one MultiWorkerMirroredStrategy


def join_workers():
    """The MultiWorkerMirroredStrategy of this process, made once (TensorFlow allows it only
    before the process runs any other TensorFlow operation: `train` makes it first)."""
    global _joined
    if _joined is None:
        cluster()
        tf = import_tensorflow()
        options = tf.distribute.experimental.CommunicationOptions(timeout_seconds=WORKER_TIMEOUT)
        _joined = tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)
    return _joined


def is_multi_worker(strategy) -> bool:
    tf = import_tensorflow()
    return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)


def is_chief(strategy) -> bool:
    """Whether this process writes the run folder: no strategy, one machine, or the chief."""
    return strategy is None or not is_multi_worker(strategy) or strategy.extended.should_checkpoint


@contextmanager
def keras_multi_worker_fixes(strategy):
    """Keras 3.15's `fit` under MultiWorkerMirroredStrategy (keras-team/keras#20585): it
    builds the model from a batch reduced with strategy.reduce("MEAN", ...) across workers,
    which fails on a per-replica batch; and it reduces the scalar metrics with
    strategy.reduce("MEAN", v, axis=0), which fails on scalars. Here the build takes the
    first local replica's batch (only its shapes matter) and the metrics are reduced with
    axis=None, for the length of the block. Nothing changes outside multi-worker sessions."""
    if strategy is None or not is_multi_worker(strategy):
        yield
        return
    import keras
    if keras.__version__ != KERAS_FIXED:
        raise RunError(f"--strategy multi-worker is fixed for Keras {KERAS_FIXED}, and this is "
                       f"Keras {keras.__version__}: install the version the project pins")
    from keras.src.backend.tensorflow import trainer
    tf = import_tensorflow()
    reduce_per_replica, maybe_symbolic_build = (trainer.reduce_per_replica,
                                                trainer.TensorFlowTrainer._maybe_symbolic_build)

    def first_local(value):
        if isinstance(value, tf.distribute.DistributedValues):
            return strategy.experimental_local_results(value)[0]
        return value

    def build(self, iterator=None, data_batch=None):
        if iterator is not None and self._distribute_strategy is not None:
            for _, _, it in iterator:
                data_batch = tf.nest.map_structure(first_local, next(it))
                break
            with self.distribute_strategy.scope():
                self._symbolic_build(data_batch=data_batch)
            return
        maybe_symbolic_build(self, iterator, data_batch)

    def reduce(values, strategy_, reduction):
        if reduction in ("auto", "mean"):
            return tf.nest.map_structure(
                lambda v: strategy_.reduce("MEAN", v, axis=None)
                if trainer._is_per_replica_instance(v) else v, values)
        return reduce_per_replica(values, strategy_, reduction)

    trainer.reduce_per_replica, trainer.TensorFlowTrainer._maybe_symbolic_build = reduce, build
    try:
        yield
    finally:
        trainer.reduce_per_replica = reduce_per_replica
        trainer.TensorFlowTrainer._maybe_symbolic_build = maybe_symbolic_build


KERAS_FIXED = "3.15.1"

WORKER_COPY = "musicrgan-worker-"  # tempfile's folder for a worker's copy: + PID-random
# what a worker's private copy of a run leaves out: outputs, and a first stage's latent cache
NOT_COPIED = shutil.ignore_patterns("samples", "tensorboard", "eval", "latents", ".lock",
                                    ".pending-*")


def wait_for_run(path: Path, timeout: float = WORKER_TIMEOUT) -> None:
    """Wait for the chief to create the run at `path` (`train new` on every worker)."""
    deadline = time.monotonic() + timeout
    while not (Path(path) / "config.yaml").is_file():
        if time.monotonic() > deadline:
            raise RunError(f"the chief worker did not create the run {path} within "
                           f"{timeout:.0f} s: start it, with the same command, and give every "
                           "worker the same run folder path (a shared file system)")
        time.sleep(0.5)


@contextmanager
def private_copy(path: Path):
    """A copy of the run at `path` for a worker that is not the chief to train and throw
    away: the chief alone writes the run folder. (Copies left by killed workers go first.)"""
    for left in Path(tempfile.gettempdir()).glob(f"{WORKER_COPY}*"):
        if not alive(left.name[len(WORKER_COPY):].split("-")[0]):
            shutil.rmtree(left, ignore_errors=True)
    folder = Path(tempfile.mkdtemp(prefix=f"{WORKER_COPY}{os.getpid()}-"))
    try:
        copy = folder / Path(path).name
        shutil.copytree(path, copy, ignore=NOT_COPIED)
        yield copy
    finally:
        shutil.rmtree(folder, ignore_errors=True)
