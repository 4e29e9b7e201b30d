"""The studio as a user meets it: `musicrgan serve` in its own process, the page in headless
Chromium (Debian's, driven by Playwright), 50 generation requests at once, kill -9 mid-job."""

import asyncio
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time

import pytest
import yaml

from conftest import job_finished, run_cli, tiny_config, wait_until

pytestmark = pytest.mark.slow
from fastapi.testclient import TestClient  # noqa: E402

from musicrgan.app.server import create_app  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(home, port=None):
    """`musicrgan serve` on `port` (a free one if None), once it answers; the process, with
    its address as `.base` and its port as `.port`."""
    import httpx2
    port = port or free_port()
    log = open(home / f"serve-{port}.log", "a")
    proc = subprocess.Popen([sys.executable, "-m", "musicrgan", "serve", "--home", str(home),
                             "--port", str(port)], stdout=log, stderr=subprocess.STDOUT)
    proc.port, proc.base = port, f"http://127.0.0.1:{port}"

    def answers():
        try:
            return httpx2.get(f"{proc.base}/api/runs", timeout=2).status_code == 200
        except httpx2.HTTPError:
            return proc.poll() is not None
    wait_until(answers, timeout=120, every=0.2)
    assert proc.poll() is None, (home / f"serve-{port}.log").read_text()
    return proc


def stop(proc):
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture
def trained_home(tmp_path, techno):
    shutil.copytree(techno, tmp_path / "data" / "techno")
    proc = run_cli("train", "new", tmp_path / "runs" / "tiny", "--model", "fft-lstm", "--data",
                   tmp_path / "data" / "techno", "--config", tiny_config("fft-lstm"),
                   "--epochs", "1")
    assert proc.returncode == 0, proc.stderr
    return tmp_path


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        pytest.skip("chromium is not installed (.ci/run installs it)")
    return found


def test_the_page_makes_a_corpus_trains_generates_and_plays(tmp_path):
    from playwright.sync_api import expect, sync_playwright
    server = serve(tmp_path)
    config = tiny_config("fft-lstm").read_text()  # key: value lines, as the form takes them
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium(), args=[
                "--no-sandbox", "--autoplay-policy=no-user-gesture-required"])
            page = browser.new_page(viewport={"width": 1366, "height": 800})
            errors = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(f"{server.base}/")
            page.wait_for_selector("body[data-ready='1']")

            # a tiny built-in corpus, from the form
            synth = page.locator("#synth-form")
            synth.locator("input[name=name]").fill("loops")
            synth.locator("input[name=loops]").fill("6")
            synth.locator("input[name=seconds]").fill("4")
            synth.locator("input[name=rate]").fill("8000")
            synth.locator("button").click()
            expect(page.locator("#corpus-table tbody tr")).to_contain_text("loops", timeout=60_000)

            # a tiny run, trained for three epochs: its curve appears as it learns
            form = page.locator("#new-run-form")
            form.locator("input[name=name]").fill("first")
            form.locator("select[name=model]").select_option("fft-lstm")
            form.locator("select[name=corpus]").select_option("loops")
            form.locator("input[name=epochs]").fill("3")
            form.locator("textarea[name=config]").fill(config)
            form.locator("button").press("Enter")  # the keyboard works too
            expect(page.locator("#run-table tbody")).to_contain_text("first", timeout=120_000)
            page.locator("#run-table button", has_text="first").click()
            expect(page.locator("#curve")).to_have_attribute("data-epochs", "3", timeout=180_000)
            assert page.locator("#curve polyline").count() == 2  # loss and val_loss
            points = page.locator("#curve polyline").first.get_attribute("points").split()
            assert len(points) == 3

            # generate one clip with the family's controls; it comes back as a player
            gen = page.locator("#generate-form")
            gen.locator("input[name=n]").fill("1")
            gen.locator("input[name=seconds]").fill("2")
            gen.locator("button").click()
            player = page.locator("#results audio").first
            expect(player).to_be_attached(timeout=120_000)
            page.wait_for_function("document.querySelector('#results audio').readyState >= 1")
            duration = page.evaluate("document.querySelector('#results audio').duration")
            assert duration == pytest.approx(2.0, abs=0.05)
            page.evaluate("document.querySelector('#results audio').play()")
            page.wait_for_function("document.querySelector('#results audio').currentTime > 0.2",
                                   timeout=20_000)
            spectrogram = page.locator("#results img").first
            expect(spectrogram).to_be_visible()
            assert page.evaluate("document.querySelector('#results img').naturalWidth") > 100
            # beside it, clips of the corpus's held-out split
            expect(page.locator("#corpus-clips audio").first).to_be_attached()
            statuses = page.locator("#job-table tbody tr td.status").all_inner_texts()
            assert statuses and all(s.startswith("done") for s in statuses), statuses
            assert errors == []
            browser.close()
    finally:
        stop(server)


async def at_once(base: str, path: str, bodies: list[dict]) -> list:
    """POST each body to base + path, all at once; the responses in order."""
    import httpx2
    async with httpx2.AsyncClient(base_url=base, timeout=60) as client:
        return await asyncio.gather(*[client.post(path, json=body) for body in bodies])


def test_fifty_generation_requests_at_once(trained_home):
    import httpx2
    server = serve(trained_home)
    base = server.base
    try:
        answers = asyncio.run(at_once(base, "/api/runs/tiny/generate",
                                      [{"n": 1, "seconds": 0.5, "seed": i} for i in range(50)]))
        codes = [a.status_code for a in answers]
        accepted = [a.json()["id"] for a in answers if a.status_code == 202]
        assert set(codes) == {202, 429}, codes
        assert 1 <= len(accepted) <= 10 + 2  # two workers and eight waiting (plus any done)
        with httpx2.Client(base_url=base, timeout=30) as client:
            jobs = [job_finished(client, job_id) for job_id in accepted]
            assert [j["status"] for j in jobs] == ["done"] * len(accepted)
            assert all(len(j["result"]["clips"]) == 1 for j in jobs)
            listed = {j["id"] for j in client.get("/api/jobs?limit=100").json()}
            assert listed == set(accepted)  # none lost, none made up
            assert client.get("/api/runs").status_code == 200
        assert server.poll() is None
    finally:
        stop(server)


def test_a_server_killed_mid_training_comes_back_and_the_run_goes_on(trained_home):
    import httpx2
    server = serve(trained_home)
    base = server.base
    with httpx2.Client(base_url=base, timeout=30) as client:
        job_id = client.post("/api/runs/tiny/train", json={"epochs": 5000}).json()["id"]
        wait_until(lambda: client.get("/api/runs/tiny").json()["epochs"] >= 3, timeout=180)
    db = sqlite3.connect(trained_home / ".studio" / "jobs.sqlite")
    child = db.execute("SELECT pid FROM jobs WHERE id = ?", (job_id,)).fetchone()[0]
    db.close()
    server.kill()  # kill -9
    server.wait()
    wait_until(lambda: not os.path.exists(f"/proc/{child}") or
               open(f"/proc/{child}/stat").read().split()[2] == "Z", timeout=30)
    assert not os.path.exists(f"/proc/{child}") or \
        open(f"/proc/{child}/stat").read().split()[2] == "Z"  # the job died with the server

    server = serve(trained_home, server.port)
    try:
        with httpx2.Client(base_url=base, timeout=30) as client:
            job = client.get(f"/api/jobs/{job_id}").json()
            assert job["status"] == "interrupted" and "continue" in job["error"]
            epochs = client.get("/api/runs/tiny").json()["epochs"]
            assert epochs >= 3
            more = client.post("/api/runs/tiny/train", json={"epochs": 2})
            assert more.status_code == 202
            assert job_finished(client, more.json()["id"])["status"] == "done"
            run = client.get("/api/runs/tiny").json()
            assert run["epochs"] == epochs + 2
            assert [r["epoch"] for r in run["history"]] == list(range(1, epochs + 3))
    finally:
        stop(server)


def test_reconstruct_interpolate_evaluate_and_compare_through_the_api(tmp_path, techno):
    from conftest import chord, write_wav
    shutil.copytree(techno, tmp_path / "data" / "techno")
    low = write_wav(tmp_path / "low.wav", chord(2.0, 8000, (110.0, 165.0)), 8000)
    high = write_wav(tmp_path / "high.wav", chord(2.0, 8000, (440.0, 660.0)), 8000)
    with TestClient(create_app(tmp_path)) as client:
        config = yaml.safe_load(tiny_config("spec-vae").read_text())
        started = client.post("/api/runs", json={"name": "vae", "model": "spec-vae",
                                                 "corpus": "techno", "epochs": 1,
                                                 "config": config})
        assert job_finished(client, started.json()["id"])["status"] == "done"
        abilities = client.get("/api/runs/vae").json()["abilities"]
        assert abilities["encodes"] and abilities["interpolates"]
        ids = [client.post("/api/uploads", files={"file": (p.name, p.read_bytes())}).json()["id"]
               for p in (low, high)]

        made = client.post("/api/runs/vae/reconstruct", json={"uploads": ids})
        job = job_finished(client, made.json()["id"])
        assert job["status"] == "done", job
        assert set(job["result"]["scores"]) == {"low.wav", "high.wav"}
        assert sorted(c["file"] for c in job["result"]["clips"]) == [
            "high_original.wav", "high_reconstruction.wav", "low_original.wav",
            "low_reconstruction.wav"]
        assert client.get(job["result"]["clips"][0]["url"]).content[:4] == b"RIFF"

        made = client.post("/api/runs/vae/interpolate", json={"a": ids[0], "b": ids[1],
                                                              "steps": 3})
        job = job_finished(client, made.json()["id"])
        assert job["status"] == "done", job
        assert [c["position"] for c in job["result"]["clips"]] == [0.0, 0.5, 1.0]

        made = client.post("/api/runs/vae/evaluate", json={"n": 2, "seconds": 1})
        job = job_finished(client, made.json()["id"])
        assert job["status"] == "done", job
        assert job["result"]["evaluation"]["frechet"]["generated_vs_test"] > 0

        made = client.post("/api/compare", json={
            "corpus": "techno", "models": ["fft-lstm"], "budget_minutes": 0.05, "n": 2,
            "seconds": 1, "configs": {"fft-lstm": yaml.safe_load(tiny_config("fft-lstm").read_text())}})
        job = job_finished(client, made.json()["id"], timeout=600)
        assert job["status"] == "done", (job["error"], job["log"])
        assert job["result"]["best"] == "fft-lstm" and job["result"]["rows"][0][0] == "fft-lstm"
        assert client.get(job["result"]["page"]).status_code == 200


def test_train_and_generate_through_the_api(trained_home):
    home = trained_home
    with TestClient(create_app(home)) as client:
        schema = client.get("/openapi.json").json()
        for path in ("/api/runs", "/api/runs/{run}", "/api/runs/{run}/generate",
                     "/api/jobs/{job_id}", "/api/results/{path}"):
            assert path in schema["paths"], path
        started = client.post("/api/runs", json={"name": "api-run", "model": "fft-lstm",
                                                 "corpus": "techno", "epochs": 2,
                                                 "config": yaml.safe_load(tiny_config("fft-lstm").read_text())})
        assert started.status_code == 202 and started.json()["status"] == "queued"
        job = job_finished(client, started.json()["id"])
        assert job["status"] == "done", job
        assert job["progress"] == 1.0 and job["result"]["run"]["epochs"] == 2
        run = client.get("/api/runs/api-run").json()
        assert run["family"] == "fft-lstm" and run["corpus"] == "techno"
        assert [row["epoch"] for row in run["history"]] == [1, 2]
        assert run["abilities"]["generates"] and run["abilities"]["continues_audio"]

        # a display name and description, kept in the run folder
        about = client.patch("/api/runs/api-run", json={"display_name": "First try",
                                                         "description": "two epochs"})
        assert about.json() == {"display_name": "First try", "description": "two epochs"}
        listed = {r["name"]: r for r in client.get("/api/runs").json()}
        assert listed["api-run"]["display_name"] == "First try" and listed["api-run"]["epochs"] == 2

        made = client.post("/api/runs/api-run/generate", json={"n": 2, "seconds": 1.5, "seed": 4})
        assert made.status_code == 202
        job = job_finished(client, made.json()["id"])
        assert job["status"] == "done", job
        clips = job["result"]["clips"]
        assert len(clips) == 2 and all(c["seed"] == 4 for c in clips)
        wav = client.get(clips[0]["url"])
        assert wav.status_code == 200 and wav.content[:4] == b"RIFF"
        png = client.get(clips[0]["image_url"])
        assert png.status_code == 200 and png.content[:4] == b"\x89PNG"
        assert client.get(job["result"]["page"]).status_code == 200

        # the held-out clips to listen to beside them
        held_out = client.get("/api/corpora/techno/clips?split=test").json()
        assert held_out and client.get(held_out[0]["url"]).content[:4] == b"RIFF"
        assert client.get(held_out[0]["image_url"]).content[:4] == b"\x89PNG"
        corpora = client.get("/api/corpora").json()
        assert corpora[0]["name"] == "techno" and corpora[0]["files"] == 6


def test_a_failing_job_says_why_and_cancel_stops_training_resumably(trained_home):
    home = trained_home
    with TestClient(create_app(home)) as client:
        bad = client.post("/api/runs", json={"name": "bad-config", "model": "fft-lstm",
                                             "corpus": "techno", "config": {"hidden": -3}})
        job = job_finished(client, bad.json()["id"])
        assert job["status"] == "failed" and "hidden" in job["error"], job
        assert client.get("/api/runs").status_code == 200  # the server is still up

        long = client.post("/api/runs/tiny/train", json={"epochs": 5000})
        assert long.status_code == 202
        again = client.post("/api/runs/tiny/train", json={"epochs": 1})
        assert again.status_code == 409 and "already being trained" in again.json()["detail"]
        job_id = long.json()["id"]
        before = client.get("/api/runs/tiny").json()["epochs"]
        deadline = time.time() + 120
        while client.get("/api/runs/tiny").json()["epochs"] < before + 2 and time.time() < deadline:
            time.sleep(0.2)
        running = client.get(f"/api/jobs/{job_id}").json()
        assert running["status"] == "running" and 0 < running["progress"] < 1
        client.post(f"/api/jobs/{job_id}/cancel")
        job = job_finished(client, job_id, timeout=60)
        assert job["status"] == "cancelled"
        stopped_at = client.get("/api/runs/tiny").json()["epochs"]
        assert stopped_at >= before + 2
        more = client.post("/api/runs/tiny/train", json={"epochs": 1})
        assert job_finished(client, more.json()["id"])["status"] == "done"
        run = client.get("/api/runs/tiny").json()
        assert run["epochs"] == stopped_at + 1 and len(run["history"]) == stopped_at + 1


def test_serve_refuses_a_served_home_and_warns_beyond_localhost_without_a_token(tmp_path):
    from conftest import assert_one_line_error
    (tmp_path / "file").write_text("")
    assert_one_line_error(run_cli("serve", "--home", tmp_path / "file"), "--home", "not a folder")
    served = create_app(tmp_path / "served")  # holds the home until it shuts down
    assert_one_line_error(run_cli("serve", "--home", tmp_path / "served"), "busy", "serving")
    served.state.jobs.shutdown()
    port = free_port()
    for flags, expected in ((["--host", "0.0.0.0"], "without --token"),
                            (["--token", "auto"], "?token=")):
        proc = subprocess.Popen([sys.executable, "-m", "musicrgan", "serve", "--home", tmp_path,
                                 "--port", str(port), *flags], stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
        lines = [proc.stdout.readline() for _ in range(2 if "0.0.0.0" in flags else 1)]
        proc.terminate()
        proc.wait(30)
        assert any(expected in line for line in lines), lines
