"""Training under a device strategy (`train --strategy`): mirrored on this machine's one CPU
is the default's training, step for step; on two replicas (the CPU split in two logical
devices) every family trains on a global batch, its statistics counted over it; two local
worker processes (`multi-worker`, TF_CONFIG) train every family too, and a killed worker
leaves a run that continues; what cannot run is refused in a line before anything is made."""

import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest

from conftest import assert_refused, cli, start_cli, tiny_config, wait_until
from musicrgan.distribute import local_cluster
from musicrgan.models import FAMILIES, family_names
from musicrgan.models.base import OnLatents
from musicrgan.runs import read_history

# the CPU as two logical devices, before TensorFlow starts: two replicas on one machine
TWO_CPUS = """
from musicrgan import import_tensorflow
tf = import_tensorflow()
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
"""


# Keras's step, and one of ours through merge_call (slow: 25 s)
@pytest.mark.parametrize("name", ["fft-lstm", pytest.param("lstm-gan", marks=pytest.mark.slow)])
def test_mirrored_on_one_replica_trains_as_the_default_does(name, techno, tmp_path, capsys):
    losses = {}
    for strategy in ("default", "mirrored"):
        run = tmp_path / strategy
        status, _, err = cli(capsys, "train", "new", run, "--model", name, "--data", techno,
                             "--config", tiny_config(name), "--set", "seed=5",
                             "--epochs", "2", "--strategy", strategy)
        assert status == 0, err
        history = read_history(run)
        assert [int(r["epoch"]) for r in history] == [1, 2] and "replicas" not in history[0]
        losses[strategy] = [float(v) for r in history for k, v in r.items() if "loss" in k]
    assert losses["mirrored"] == pytest.approx(losses["default"], rel=1e-5)


# two replicas, each with a batch of two vectors near one code of a 4-code quantizer
EMA_ON_REPLICAS = TWO_CPUS + """
import json
import numpy as np
from musicrgan.modules.quantizer import VectorQuantizer
strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
with strategy.scope():
    q = VectorQuantizer(4, 2, decay=0.5, restart_below=0.0)
    q.build()
    q.codebook.assign(np.array([[0, 0], [1, 0], [0, 1], [1, 1]], np.float32))
    q.ema_sum.assign(q.codebook.value)
batches = np.array([[[0.1, 0.0], [0.0, 0.1]], [[0.9, 1.0], [1.0, 0.9]]], np.float32)
data = strategy.experimental_distribute_values_from_function(
    lambda context: batches[context.replica_id_in_sync_group])
step = lambda vectors: q.update(vectors, q.indices(vectors), tf.constant([1, 2]))
tf.function(lambda d: strategy.run(step, args=(d,)))(data)
print(json.dumps({"count": q.ema_count.numpy().tolist(),
                  "codebook": q.codebook.numpy().tolist()}))
"""


def test_an_ema_codebook_on_replicas_counts_the_global_batch():
    """vqvae's and spec-vae's EMA codebook on two replicas: the counts and sums of every
    replica's batch go into the EMA (code 3 is used only on replica 1)."""
    done = subprocess.run([sys.executable, "-c", EMA_ON_REPLICAS], capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    state = json.loads(done.stdout.strip().splitlines()[-1])
    # 0.5 x the initial count 1 + 0.5 x the global count (2 vectors each for codes 0 and 3)
    assert state["count"] == pytest.approx([1.5, 0.5, 0.5, 1.5])
    codebook = np.array(state["codebook"])
    # the mean of 0.5 x the old code and 0.5 x the sum of its vectors, Laplace-smoothed
    np.testing.assert_allclose(codebook[0], [0.05 / 1.5] * 2, rtol=1e-3)
    np.testing.assert_allclose(codebook[3], [(0.5 + 0.95) / 1.5] * 2, rtol=1e-3)
    np.testing.assert_allclose(codebook[1:3], [[1, 0], [0, 1]], atol=1e-4)  # unused: kept


def test_an_unknown_strategy_is_refused_in_one_line(techno, tmp_path, capsys):
    assert_refused(cli(capsys, "train", "new", tmp_path / "x", "--model", "fft-lstm", "--data",
                       techno, "--strategy", "tpu"), "--strategy", "mirrored")
    assert not (tmp_path / "x").exists()


def test_multi_worker_refusals_come_before_anything_is_made(techno, tmp_path, capsys,
                                                            monkeypatch):
    args = ("train", "new", tmp_path / "w", "--model", "fft-lstm", "--data", techno,
            "--epochs", "1", "--strategy", "multi-worker")
    monkeypatch.delenv("TF_CONFIG", raising=False)
    assert_refused(cli(capsys, *args), "needs TF_CONFIG")
    monkeypatch.setenv("TF_CONFIG", "{not json")
    assert_refused(cli(capsys, *args), "TF_CONFIG must be JSON")
    monkeypatch.setenv("TF_CONFIG", json.dumps(cluster(["localhost:1"], 0)))
    assert_refused(cli(capsys, *args), "names one worker")
    monkeypatch.setenv("TF_CONFIG", json.dumps(cluster(["localhost:1", "localhost:2"], 2)))
    assert_refused(cli(capsys, *args), "not in its cluster")
    assert_refused(cli(capsys, *args[:-4], "--minutes", "1", *args[-2:]), "--minutes",
                   "--epochs")
    assert not (tmp_path / "w").exists()


# every family, and spec-vae's vq form (an EMA codebook, as vqvae)
REPLICATING = [pytest.param(n, [], id=n) for n in family_names()] + [
    pytest.param("spec-vae", ["--set", "latent=vq"], id="spec-vae-vq")]


@pytest.mark.slow
@pytest.mark.parametrize("name, sets", REPLICATING)
def test_a_replicating_family_trains_on_two_replicas(name, sets, techno, tmp_path, capsys):
    source = upstream_of(name, techno, tmp_path, capsys) + sets
    run = tmp_path / name
    proc = start_cli(TWO_CPUS, "train", "new", run, "--model", name, *source, "--config",
                     tiny_config(name), "--epochs", "2", "--strategy", "mirrored",
                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.wait(300) == 0, proc.stderr.read()
    history = read_history(run)
    assert [int(r["epoch"]) for r in history] == [1, 2]
    assert [int(r["replicas"]) for r in history] == [2, 2]
    assert all(np.isfinite(float(v)) for r in history for k, v in r.items() if "loss" in k)
    state = json.loads((run / "state.json").read_text())
    assert state["epochs_done"] == 2
    if name == "code-prior":  # every replica's windows counted: 2 epochs x 3 steps x 2 x 4
        from musicrgan.runs import Run
        counts = Run(run).model("last").get_layer("clock").tempo_counts
        assert float(np.sum(np.asarray(counts))) == 2 * 3 * 2 * 4
    if name == "latent-diffusion":  # every replica's window steps in the moments: x 16,
        from musicrgan.runs import Run  # and every replica's windows in the styles
        model = Run(run).model("last")
        assert float(model.moments.count) == 2 * 3 * 2 * 4 * 16
        assert float(model.styles.count) == 2 * 3 * 2 * 4
    # the run goes on on one device (the checkpoint does not depend on the strategy)
    status, _, err = cli(capsys, "train", "continue", run, "--epochs", "1")
    assert status == 0, err
    assert [int(r["epoch"]) for r in read_history(run)] == [1, 2, 3]
    phases = FAMILIES[name].phases
    if phases:  # a later phase on two replicas too (wave-vae's adversarial: two optimizers)
        proc = start_cli(TWO_CPUS, "train", "continue", run, "--phase", phases[-1], "--epochs",
                         "1", "--strategy", "mirrored",
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert proc.wait(300) == 0, proc.stderr.read()
        last = read_history(run)[-1]
        assert last["phase"] == phases[-1] and int(last["replicas"]) == 2
        assert all(np.isfinite(float(v)) for k, v in last.items() if "loss" in k and v)


def cluster(workers: list[str], index: int) -> dict:
    return {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}


def two_workers(scratch, *args) -> list[subprocess.Popen]:
    """`musicrgan ARGS --strategy multi-worker` in two local worker processes (worker 0, the
    chief, first), their temporary folders in `scratch`."""
    env = {**os.environ, "TMPDIR": str(scratch)}
    return [subprocess.Popen([sys.executable, "-m", "musicrgan", *map(str, args),
                              "--strategy", "multi-worker"],
                             env={**env, "TF_CONFIG": json.dumps(tf_config)},
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for tf_config in local_cluster(2)]


def upstream_of(name: str, techno, tmp_path, capsys) -> list:
    """The source arguments of a run of `name`: the corpus, or a tiny upstream trained on
    one device."""
    if not issubclass(FAMILIES[name], OnLatents):
        return ["--data", techno]
    first = "vqvae" if name == "code-prior" else "wave-vae"
    upstream = tmp_path / first
    status, _, err = cli(capsys, "train", "new", upstream, "--model", first, "--data", techno,
                         "--config", tiny_config(first), "--epochs", "1")
    assert status == 0, err
    source = ["--upstream", upstream]
    if name == "code-prior":
        source += ["--set", "clock=true"]  # its tempo counts must add up across workers
    return source


@pytest.mark.slow
@pytest.mark.parametrize("name, sets", REPLICATING)
def test_two_worker_processes_train_a_family_as_one_process_does(name, sets, techno, tmp_path,
                                                                 capsys):
    source = upstream_of(name, techno, tmp_path, capsys) + sets
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    args = ("--config", tiny_config(name), "--epochs", "1")
    status, _, err = cli(capsys, "train", "new", tmp_path / "one", "--model", name, *source,
                         *args)
    assert status == 0, err
    workers = two_workers(scratch, "train", "new", tmp_path / "two", "--model", name, *source,
                          *args)
    for worker in workers:
        assert worker.wait(600) == 0, worker.stderr.read()
    # every worker logged the same losses (the second's last line says them)
    said = [worker.stdout.read().strip().splitlines()[-1] for worker in workers]
    assert said[0] == said[1] and "epochs done" in said[0]
    alone, together = read_history(tmp_path / "one"), read_history(tmp_path / "two")
    assert [int(r["epoch"]) for r in together] == [1]
    assert int(together[0]["replicas"]) == 2 and "replicas" not in alone[0]
    assert set(together[0]) - {"replicas"} == set(alone[0])   # the same history shape
    assert together[0]["steps"] == alone[0]["steps"]
    assert all(np.isfinite(float(v)) for k, v in together[0].items() if "loss" in k)
    assert os.listdir(scratch) == []   # the second worker's copy of the run is gone
    from musicrgan.runs import Run
    model = Run(tmp_path / "two").model("last")
    if name == "code-prior":  # both workers' windows counted: 3 steps x 2 workers x 4
        assert float(np.sum(np.asarray(model.get_layer("clock").tempo_counts))) == 3 * 2 * 4
    if name == "latent-diffusion":  # both workers' window steps in the moments and styles
        assert float(model.moments.count) == 3 * 2 * 4 * 16
        assert float(model.styles.count) == 3 * 2 * 4
    # the run goes on in one process
    status, _, err = cli(capsys, "train", "continue", tmp_path / "two", "--epochs", "1")
    assert status == 0, err
    assert [int(r["epoch"]) for r in read_history(tmp_path / "two")] == [1, 2]


@pytest.mark.slow
def test_a_killed_worker_ends_the_session_and_the_run_continues(techno, tmp_path, capsys):
    run, scratch = tmp_path / "run", tmp_path / "scratch"
    scratch.mkdir()
    chief, worker = two_workers(scratch, "train", "new", run, "--model", "fft-lstm",
                                "--data", techno, "--config", tiny_config("fft-lstm"),
                                "--epochs", "4", "--set", "steps_per_epoch=200")
    wait_until(lambda: len(read_history(run)) >= 1 if (run / "history.csv").exists() else False,
               timeout=300, every=0.2)
    time.sleep(1.0)   # into epoch 2
    worker.kill()
    assert chief.wait(120) == 1   # the chief stops at its next step, in one line
    err = chief.stderr.read()
    assert "a worker stopped" in err and "keeps epoch 1" in err and "Traceback" not in err
    assert [int(r["epoch"]) for r in read_history(run)] == [1]
    status, _, err = cli(capsys, "train", "continue", run, "--epochs", "1")
    assert status == 0, err
    assert [int(r["epoch"]) for r in read_history(run)] == [1, 2]
    assert [r["session"] for r in read_history(run)] == ["1", "2"]
