"""`make demo`, shortened: every step runs, training stops on its time budget, the results
page lists what was generated, and running it again trains the same run for another budget."""

import json
import subprocess
import sys

import pytest


def run_demo(cwd, minutes):
    code = ("import sys; from musicrgan import demo; "
            f"sys.exit(demo.run(minutes={minutes}, loops=8, seconds=8, eval_clips=4))")
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True,
                          timeout=900)


@pytest.mark.slow
def test_demo_runs_end_to_end_on_a_budget_and_resumes(tmp_path):
    from musicrgan import demo
    from musicrgan.compare import UPSTREAM_SHARE
    from musicrgan.runs import training_seconds
    proc = run_demo(tmp_path, 0.3)
    assert proc.returncode == 0, proc.stderr[-2000:]
    run, upstream = tmp_path / demo.RUN, tmp_path / demo.UPSTREAM_RUN
    state = json.loads((run / "state.json").read_text())
    upstream_state = json.loads((upstream / "state.json").read_text())
    first = state["epochs_done"]
    assert first >= 1 and upstream_state["epochs_done"] >= 1
    # the budget, not the epoch count (10 000), ends training, in the epoch that reaches it:
    # mid-epoch on a slow machine, at an epoch's end on a fast one; the vqvae trains for its
    # share, the code-prior for what it left (at least a tenth: with a budget this short the
    # vqvae's first step, its graph traced, can take all of it)
    budget = 0.3 * 60
    vqvae_seconds = training_seconds(upstream_state)
    for stage, stage_budget in ((upstream_state, UPSTREAM_SHARE * budget),
                                (state, max(budget - vqvae_seconds, 0.1 * budget))):
        before_last = sum(row["seconds"] for row in stage["history"][:-1])
        assert before_last < stage_budget and training_seconds(stage) > 0.75 * stage_budget, (
            stage["history"], stage_budget)
    eval_json = json.loads((run / "eval.json").read_text())
    assert eval_json["family"] == demo.GENERATOR and eval_json["loudness_matched"]["frechet"] > 0
    listing = json.loads((tmp_path / "results" / "index.json").read_text())["clips"]
    assert len(listing) == 3 and all(c["loudness_target"] < 0 for c in listing)
    assert all((tmp_path / "results" / c["file"]).is_file() for c in listing)
    assert "results/index.html" in proc.stdout

    again = run_demo(tmp_path, 0.3)  # a second demo trains the same run for another budget
    assert again.returncode == 0, again.stderr[-2000:]
    assert f"{demo.RUN} exists" in again.stdout and f"train continue {demo.RUN}" in again.stdout
    state = json.loads((run / "state.json").read_text())
    assert state["epochs_done"] > first and training_seconds(state) > 0.3 * 60
    # the prior learned the vqvae's codes: the vqvae stays as it was
    assert json.loads((upstream / "state.json").read_text()) == upstream_state
    listing = json.loads((tmp_path / "results" / "index.json").read_text())["clips"]
    assert len(listing) == 6  # the first batch's loops are kept, not overwritten


def play(trained: dict, minutes: float, overrun: float = 0.0) -> list[str]:
    """The demo's training commands for `minutes`, each as one string; `trained` (run →
    {"seconds", "phase"}, read by the faked read_state) gains what each command was given,
    plus `overrun`, and the phase it entered."""
    from musicrgan import demo
    commands = []
    for argv in demo.training_commands(minutes):
        commands.append(" ".join(argv))
        run = trained.setdefault(argv[2], {"seconds": 0.0})
        run["seconds"] += overrun + 60 * float(argv[argv.index("--minutes") + 1])
        if "--phase" in argv:
            run["phase"] = argv[argv.index("--phase") + 1]
    return commands


def fake_runs(monkeypatch):
    """Run folders faked by what play() records: the demo's runs exist once trained."""
    from musicrgan import demo, runs
    trained = {}
    monkeypatch.setattr(demo, "_exists", lambda run: run in trained)
    monkeypatch.setattr(runs, "read_state", lambda path: {
        "epochs_done": 1, "history": [{"seconds": trained[str(path)]["seconds"]}],
        **({"phase": trained[str(path)]["phase"]} if "phase" in trained[str(path)] else {})})
    return trained


def damaged_state(path):
    from musicrgan.runs import DamagedState
    raise DamagedState(f"{path}/state.json is damaged")


def test_the_demo_splits_its_budget_across_the_chain_and_finishes_what_a_stopped_demo_left(
        monkeypatch):
    """Without training: the commands the demo runs, against fake run folders that gain the
    seconds each command was given (plus `overrun`: an epoch that ran past the budget)."""
    from musicrgan import demo
    trained = fake_runs(monkeypatch)
    monkeypatch.setattr(demo, "upstream_plan", lambda: (("autoencoder", 1.0),))
    vqvae, prior = demo.UPSTREAM_RUN, demo.RUN
    assert play(trained, 5, overrun=6) == [
        f"train new {vqvae} --model vqvae --data data/techno --minutes 3.000 --set patience=0",
        f"train new {prior} --model code-prior --upstream {vqvae} --minutes 1.900 "
        "--set patience=0"]
    # again: the prior trains on (its vqvae is final once a prior learned its codes)
    assert play(trained, 10) == [f"train continue {prior} --minutes 10.000"]
    # a demo stopped after a minute of the vqvae's training: the rest of its share, then
    # the prior
    trained.clear()
    trained[vqvae] = {"seconds": 60.0}
    assert play(trained, 5) == [f"train continue {vqvae} --minutes 2.000",
                       f"train new {prior} --model code-prior --upstream {vqvae} "
                       "--minutes 2.000 --set patience=0"]


def test_the_demo_trains_its_upstream_through_the_phases_it_plans_for_a_budget(monkeypatch):
    """A vqvae with an adversarial share: its autoencoder phase for the first part of its
    share, then the adversarial phase for the rest (entered even after an epoch ran over),
    and a demo stopped in either phase finishes it."""
    from musicrgan import demo
    trained = fake_runs(monkeypatch)
    monkeypatch.setattr(demo, "upstream_plan", lambda: (("autoencoder", 0.75),
                                                        ("adversarial", 1.0)))
    vqvae, prior = demo.UPSTREAM_RUN, demo.RUN
    assert play(trained, 5) == [
        f"train new {vqvae} --model vqvae --data data/techno --minutes 2.250 --set patience=0",
        f"train continue {vqvae} --phase adversarial --minutes 0.750",
        f"train new {prior} --model code-prior --upstream {vqvae} --minutes 2.000 "
        "--set patience=0"]
    trained.clear()
    assert play(trained, 5, overrun=60)[1] == (f"train continue {vqvae} --phase adversarial "
                                               "--minutes 0.150")  # a twentieth of 3 minutes
    trained.clear()
    trained[vqvae] = {"seconds": 60.0, "phase": "autoencoder"}
    assert play(trained, 5)[:2] == [f"train continue {vqvae} --minutes 1.250",
                                    f"train continue {vqvae} --phase adversarial "
                                    "--minutes 0.750"]
    trained.clear()
    trained[vqvae] = {"seconds": 150.0, "phase": "adversarial"}
    assert play(trained, 5)[:2] == [
        f"train continue {vqvae} --minutes 0.500",
        f"train new {prior} --model code-prior --upstream {vqvae} --minutes 2.000 "
        "--set patience=0"]


def test_a_demo_whose_run_state_is_damaged_says_so_in_one_line(monkeypatch, capsys):
    from musicrgan import demo, runs
    monkeypatch.setattr(demo, "cli", lambda argv: 0)  # the steps themselves are not run
    monkeypatch.setattr(demo, "_exists", lambda run: run == demo.UPSTREAM_RUN)
    monkeypatch.setattr(runs, "read_state", damaged_state)
    assert demo.run(minutes=1) == 2
    err = capsys.readouterr().err
    assert err.strip() == (f"make demo: error: {demo.UPSTREAM_RUN}/state.json is damaged; "
                           "`musicrgan train continue RUN --repair` rebuilds it from "
                           "history.csv")
