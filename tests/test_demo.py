"""`make demo`, shortened: every step runs, training stops on its time budget, the results
page lists what was generated, and running it again trains the same run for another budget."""

import json
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow


def run_demo(cwd, minutes):
    code = ("import sys; from musicrgan import demo; "
            f"sys.exit(demo.run(minutes={minutes}, loops=8, seconds=8, eval_clips=4))")
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True,
                          timeout=900)


def test_demo_runs_end_to_end_on_a_budget_and_resumes(tmp_path):
    from musicrgan import demo
    from musicrgan.runs import training_seconds
    proc = run_demo(tmp_path, 0.3)
    assert proc.returncode == 0, proc.stderr[-2000:]
    run = tmp_path / demo.RUN
    state = json.loads((run / "state.json").read_text())
    first = state["epochs_done"]
    assert first >= 1
    # the budget, not the epoch count (10 000), ends training, in the epoch that reaches it:
    # mid-epoch on a slow machine, at an epoch's end on a fast one
    budget = 0.3 * 60
    before_last = sum(row["seconds"] for row in state["history"][:-1])
    assert before_last < budget and training_seconds(state) > 0.75 * budget
    eval_json = json.loads((run / "eval.json").read_text())
    assert eval_json["family"] == demo.FAMILY and eval_json["loudness_matched"]["frechet"] > 0
    listing = json.loads((tmp_path / "results" / "index.json").read_text())["clips"]
    assert len(listing) == 3 and all(c["loudness_target"] < 0 for c in listing)
    assert all((tmp_path / "results" / c["file"]).is_file() for c in listing)
    assert "results/index.html" in proc.stdout

    again = run_demo(tmp_path, 0.3)  # a second demo trains the same run for another budget
    assert again.returncode == 0, again.stderr[-2000:]
    assert f"{demo.RUN} exists" in again.stdout and f"train continue {demo.RUN}" in again.stdout
    state = json.loads((run / "state.json").read_text())
    assert state["epochs_done"] > first and training_seconds(state) > 0.3 * 60
    listing = json.loads((tmp_path / "results" / "index.json").read_text())["clips"]
    assert len(listing) == 6  # the first batch's loops are kept, not overwritten
