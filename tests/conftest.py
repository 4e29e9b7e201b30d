import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
if os.environ.get("PYTEST_XDIST_WORKER"):
    # `make test` runs two workers on two cores: one thread each for TensorFlow (and the
    # processes the tests start, which inherit this), or the two workers' thread pools fight
    # over the cores (one test took 106 s instead of 20)
    for name in ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS", "OMP_NUM_THREADS"):
        os.environ.setdefault(name, "1")

from musicrgan.audio import ffmpeg_exe  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def tiny_config(name: str) -> Path:
    """The tiny preset of a family (configs/tiny-NAME.yaml): trains in seconds on a CPU."""
    return ROOT / "configs" / f"tiny-{name}.yaml"


def chord(seconds: float, rate: int, freqs=(220.0, 330.0, 440.0), amp=0.3) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    x = sum(np.sin(2 * np.pi * f * t) for f in freqs) / len(freqs)
    return (amp * x).astype(np.float32)


def encode(path: Path, audio: np.ndarray, rate: int, channels: int = 1) -> Path:
    """Encode float audio into any format ffmpeg knows from the extension."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = np.repeat(audio[:, None], channels, axis=1) if channels > 1 else audio
    cmd = [ffmpeg_exe(), "-nostdin", "-loglevel", "error", "-y", "-f", "f32le", "-ar", str(rate),
           "-ac", str(channels), "-i", "pipe:0", str(path)]
    subprocess.run(cmd, input=np.ascontiguousarray(data, "<f4").tobytes(), check=True)
    return path


def write_wav(path: Path, audio: np.ndarray, rate: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), audio, rate, subtype="PCM_16")
    return path


def run_cli(*args, cwd=None, timeout=600):
    """The real command line, in a fresh process, as a user runs it."""
    return subprocess.run([sys.executable, "-m", "musicrgan", *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, timeout=timeout)


def start_cli(setup: str, *args, **popen):
    """The command line in a new process, after `setup` (Python code that patches something,
    e.g. a smaller group size); Popen's keyword arguments as given."""
    code = f"{setup}\nimport sys\nfrom musicrgan.cli import main\nsys.exit(main({[str(a) for a in args]!r}))"
    return subprocess.Popen([sys.executable, "-c", code], **popen)


def wait_until(ready, timeout: float = 120, every: float = 0.02) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline and not ready():
        time.sleep(every)


def job_finished(client, job_id: str, timeout: float = 300) -> dict:
    """Poll the studio's GET /api/jobs/ID (through an httpx client) until the job ends."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        job = client.get(f"/api/jobs/{job_id}").json()
        if job["status"] not in ("queued", "running"):
            return job
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} still {job['status']} after {timeout} s: {job['log']}")


def assert_keeps_the_pulse(clips, bpm: float, min_strength: float, min_on: float = 0.5) -> None:
    """Songs asked for at `bpm` have their onsets on its 16th-note grid (a mean alignment
    above `min_on`, and 2.5 times that with a grid 7 % off) and a pulse: a mean tempo
    strength above `min_strength`."""
    from musicrgan import metrics
    on = [metrics.grid_alignment(clip, bpm) for clip in clips]
    off = [metrics.grid_alignment(clip, bpm * 1.07) for clip in clips]
    strength = [metrics.tempo(clip)[1] for clip in clips]
    assert np.mean(on) > min_on and np.mean(on) > 2.5 * np.mean(off), (bpm, on, off)
    assert np.mean(strength) > min_strength, (bpm, strength)


def assert_one_line_error(proc, *words):
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    for word in words:
        assert word.lower() in lines[0].lower(), lines[0]


@pytest.fixture(scope="session")
def techno(tmp_path_factory) -> Path:
    """A small built-in corpus shared by the tests that only read it."""
    from musicrgan.corpus.synth import synth_corpus
    out = tmp_path_factory.mktemp("techno")
    synth_corpus(out, loops=6, seconds=3, rate=8000, seed=3, test_fraction=0.34)
    return out


def cli(capsys, *args):
    """The command line in this process (musicrgan.cli.main, parser and all): (exit status,
    stdout, stderr). Seconds faster than a subprocess for checks that need no process."""
    from musicrgan.cli import main
    try:
        status = main([str(a) for a in args])
    except SystemExit as exc:  # argparse's own errors and --help
        status = exc.code
    out, err = capsys.readouterr()
    return status, out, err


def assert_refused(result, *words):
    """An in-process `cli` result that is one error line (warnings aside), exit status 2."""
    status, _, err = result
    lines = [ln for ln in err.splitlines() if ln.strip() and "warning" not in ln]
    assert status == 2, (status, err)
    assert len(lines) == 1 and "Traceback" not in err, err
    for word in words:
        assert word.lower() in lines[0].lower(), lines[0]


def kill_after_epochs(proc, run: Path, epochs: int, timeout: float = 120) -> int:
    """kill -9 the process group of `proc` (started with start_new_session) once its run
    folder has committed `epochs` epochs (or it ended, or `timeout` passed); the epochs
    state.json says are done then."""
    import json
    import os
    import signal
    import time
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        try:
            if json.loads((run / "state.json").read_text())["epochs_done"] >= epochs:
                break
        except (OSError, ValueError):
            pass
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    return json.loads((run / "state.json").read_text())["epochs_done"]


def onnx_decoder_output(capsys, folder, out, latents):
    """`musicrgan export FOLDER --format onnx --out OUT`, then the exported decoder run by
    onnxruntime on `latents`: (exit status, stderr, its output or None)."""
    status, _, err = cli(capsys, "export", folder, "--format", "onnx", "--out", out)
    if status != 0:
        return status, err, None
    import onnxruntime
    session = onnxruntime.InferenceSession(str(Path(out) / "decoder.onnx"))
    return status, err, session.run(None, {session.get_inputs()[0].name: latents})[0]
