"""`make demo`, shortened: every step runs, the results page lists what was generated, and
running it again resumes instead of starting over."""

import json
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow


def run_demo(cwd, epochs):
    code = f"import sys; from musicrgan import demo; sys.exit(demo.run(epochs={epochs}, loops=8, seconds=8))"
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True,
                          timeout=900)


def test_demo_runs_end_to_end_and_resumes(tmp_path):
    from musicrgan import demo
    proc = run_demo(tmp_path, 1)
    assert proc.returncode == 0, proc.stderr[-2000:]
    run = tmp_path / demo.RUN
    assert json.loads((run / "state.json").read_text())["epochs_done"] == 1
    assert json.loads((run / "eval.json").read_text())["family"] == demo.FAMILY
    listing = json.loads((tmp_path / "results" / "index.json").read_text())["clips"]
    assert len(listing) == 3
    assert all((tmp_path / "results" / c["file"]).is_file() for c in listing)
    assert "results/index.html" in proc.stdout

    again = run_demo(tmp_path, 2)  # a longer demo continues the same run
    assert again.returncode == 0, again.stderr[-2000:]
    assert f"train continue {demo.RUN} --epochs 1" in again.stdout
    assert json.loads((run / "state.json").read_text())["epochs_done"] == 2
