"""The studio's HTTP API (`musicrgan serve`), in process through httpx: jobs that really train
and generate, the paths and uploads a request may not use, the queue's bound, the token."""

import os
import shutil
import sqlite3
import time

import numpy as np
import pytest
import yaml

from conftest import job_finished, tiny_config, write_wav

from fastapi.testclient import TestClient  # noqa: E402

from musicrgan.app.jobs import Lane  # noqa: E402
from musicrgan.app.server import create_app  # noqa: E402


def tiny(family: str) -> dict:
    return yaml.safe_load(tiny_config(family).read_text())


@pytest.fixture(scope="module")
def home(tmp_path_factory, techno):
    """A studio home: the small corpus as data/techno and a tiny fft-lstm run on it as
    runs/tiny (created, not trained: what these tests ask of a run is its config)."""
    from musicrgan.runs import Run
    root = tmp_path_factory.mktemp("studio")
    shutil.copytree(techno, root / "data" / "techno")
    Run.create(root / "runs" / "tiny", "fft-lstm", root / "data" / "techno", tiny("fft-lstm"))
    return root


def test_the_api_lists_runs_and_keeps_a_name_and_description(home):
    with TestClient(create_app(home)) as client:
        schema = client.get("/openapi.json").json()
        for path in ("/api/runs", "/api/runs/{run}", "/api/runs/{run}/generate",
                     "/api/jobs/{job_id}", "/api/results/{path}"):
            assert path in schema["paths"], path
        runs = client.get("/api/runs").json()
        assert [(r["name"], r["family"], r["corpus"], r["epochs"]) for r in runs] == [
            ("tiny", "fft-lstm", "techno", 0)]
        about = client.patch("/api/runs/tiny", json={"display_name": "First try",
                                                      "description": "acid, 8 kHz"})
        assert about.json() == {"display_name": "First try", "description": "acid, 8 kHz"}
        run = client.get("/api/runs/tiny").json()
        assert run["display_name"] == "First try" and run["history"] == []
        assert run["abilities"]["generates"] and run["abilities"]["continues_audio"]
        assert (home / "runs" / "tiny" / "about.json").is_file()
        assert "musicrgan studio" in client.get("/").text


def test_requests_reach_nothing_outside_the_home(home, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("not yours")
    (home / "results" / "leak").mkdir(parents=True, exist_ok=True)
    link = home / "results" / "leak" / "link.txt"
    if not link.exists():
        link.symlink_to(secret)
    with TestClient(create_app(home)) as client:
        for path in ("/api/results/../data/techno/manifest.jsonl",
                     "/api/results/%2e%2e/%2e%2e/etc/passwd",
                     f"/api/results/{secret}", "/api/results//etc/passwd",
                     "/api/results/leak/link.txt", "/api/results/.studio/jobs.sqlite",
                     "/api/corpora/techno/audio/../../../runs/tiny/config.yaml",
                     "/api/corpora/..%2F..%2Fetc/clips", "/api/runs/..%2Fdata",
                     "/api/runs/.hidden"):
            response = client.get(path)
            assert response.status_code in (400, 404), (path, response.status_code)
            assert b"not yours" not in response.content and b"family" not in response.content
        refused = client.post("/api/corpora/synth", json={"name": "../outside"})
        assert refused.status_code == 400 and "name" in refused.json()["detail"]
        refused = client.post("/api/runs", json={"name": "/tmp/x", "model": "fft-lstm",
                                                 "corpus": "techno"})
        assert refused.status_code == 400
        refused = client.post("/api/runs/tiny/generate", json={"prime": "../../etc/passwd"})
        assert refused.status_code == 400 and "upload" in refused.json()["detail"]
    assert not (home.parent / "outside").exists()


def test_uploads_must_be_audio_and_not_too_large(home, tmp_path):
    good = write_wav(tmp_path / "good.wav",
                     0.3 * np.sin(np.arange(16000) / 8000 * 2 * np.pi * 220).astype(np.float32),
                     16000)
    with TestClient(create_app(home, max_upload_mb=0.05)) as client:
        ok = client.post("/api/uploads", files={"file": ("my loop.wav", good.read_bytes())})
        assert ok.status_code == 201 and ok.json()["seconds"] == pytest.approx(1.0, abs=0.01)
        assert ok.json()["file"] == "my_loop.wav"
        large = client.post("/api/uploads", files={"file": ("big.wav", b"\0" * 60_000)})
        assert large.status_code == 413 and "larger than" in large.json()["detail"]
        fake = client.post("/api/uploads", files={"file": ("fake.wav", b"RIFF not really")})
        assert fake.status_code == 415 and "does not decode" in fake.json()["detail"]
        text = client.post("/api/uploads", files={"file": ("notes.txt", b"hello")})
        assert text.status_code == 415 and "audio file name" in text.json()["detail"]
        empty = client.post("/api/uploads", files={"file": ("empty.wav", b"")})
        assert empty.status_code == 400 and "empty" in empty.json()["detail"]
        # a corpus upload with one bad file is refused whole, naming it
        bad_corpus = client.post("/api/corpora", data={"name": "mine"},
                                 files=[("files", ("a.wav", good.read_bytes())),
                                        ("files", ("b.mp3", b"garbage"))])
        assert bad_corpus.status_code == 415 and "b.mp3" in bad_corpus.json()["detail"]
        assert not (home / "data" / "mine").exists()
        # nothing refused is left in the uploads folder
        kept = [p for p in (home / ".studio" / "uploads").iterdir() if any(p.iterdir())]
        assert [p.name for p in kept] == [ok.json()["id"]]
    # a server starting removes the uploads of more than a week ago, and keeps the others
    uploads = home / ".studio" / "uploads"
    old = uploads / ok.json()["id"]
    eight_days_ago = time.time() - 8 * 86400
    os.utime(old, (eight_days_ago, eight_days_ago))
    with TestClient(create_app(home)) as client:
        recent = client.post("/api/uploads", files={"file": ("new.wav", good.read_bytes())})
        assert recent.status_code == 201
    assert not old.exists()
    with TestClient(create_app(home)):
        assert (uploads / recent.json()["id"]).is_dir()


def test_a_corpus_from_uploaded_files(tmp_path):
    from conftest import chord, encode
    files = [encode(tmp_path / "in" / "a.mp3", chord(2.0, 22050), 22050),
             write_wav(tmp_path / "in" / "b.wav", chord(2.0, 16000, (200.0, 300.0)), 16000),
             write_wav(tmp_path / "in" / "c.wav", chord(1.5, 8000, (500.0,)), 8000)]
    with TestClient(create_app(tmp_path / "home")) as client:
        sent = client.post("/api/corpora", data={"name": "mine", "rate": "8000",
                                                 "test_fraction": "0.3"},
                           files=[("files", (p.name, p.read_bytes())) for p in files])
        assert sent.status_code == 202 and sent.json()["kind"] == "convert"
        job = job_finished(client, sent.json()["id"])
        assert job["status"] == "done", job
        corpus = client.get("/api/corpora/mine").json()
        assert corpus["files"] == 3 and corpus["rate"] == 8000 and corpus["failures"] == []
        assert corpus["minutes"] == pytest.approx(5.5 / 60, abs=0.01)
        again = client.post("/api/corpora", data={"name": "mine"},
                            files=[("files", ("a.mp3", files[0].read_bytes()))])
        assert again.status_code == 409


def test_generation_offers_exactly_the_familys_controls(home):
    with TestClient(create_app(home)) as client:
        families = {f["name"]: f for f in client.get("/api/families").json()}
        assert [c["name"] for c in families["lstm-gan"]["controls"]] == ["bpm"]
        assert families["fft-lstm"]["controls"] == [] and not families["vqvae"]["generates"]
        assert families["code-prior"]["needs_upstream"] and families["wave-vae"]["phases"]
        refused = client.post("/api/runs/tiny/generate", json={"controls": {"bpm": 120}})
        assert refused.status_code == 400 and "no control 'bpm'" in refused.json()["detail"]
        refused = client.post("/api/runs/tiny/generate", json={"temperature": 11})
        assert refused.status_code == 422
        refused = client.post("/api/runs/tiny/reconstruct", json={"uploads": ["0" * 16]})
        assert refused.status_code == 400 and "does not encode" in refused.json()["detail"]
        refused = client.post("/api/runs/nope/generate", json={})
        assert refused.status_code == 404


def test_a_full_queue_answers_429(home):
    # a paused lane (no workers) with two waiting places: of five requests, two are taken
    # (that no accepted job is lost, with workers: test_studio's fifty requests at once)
    lanes = {"train": Lane(0, 1), "work": Lane(0, 2)}
    with TestClient(create_app(home, lanes=lanes)) as client:
        answers = [client.post("/api/runs/tiny/generate", json={"n": 1, "seconds": 0.5,
                                                                 "seed": i}) for i in range(5)]
        codes = [a.status_code for a in answers]
        assert codes == [202, 202, 429, 429, 429], codes
        assert "try again" in answers[2].json()["detail"]
        assert client.get("/api/runs").status_code == 200
        queued = [client.get(f"/api/jobs/{a.json()['id']}").json() for a in answers[:2]]
        assert [j["status"] for j in queued] == ["queued", "queued"]
        assert "--seed 1" in queued[1]["command"]
        cancelled = client.post(f"/api/jobs/{queued[0]['id']}/cancel").json()
        assert cancelled["status"] == "cancelled"


def test_a_restarted_server_marks_the_jobs_it_lost_as_interrupted(home, tmp_path):
    studio_home = tmp_path / "restart"
    with TestClient(create_app(studio_home)) as client:
        assert client.get("/api/jobs").json() == []
    # what a killed server leaves: a running and a queued job in the database
    db = sqlite3.connect(studio_home / ".studio" / "jobs.sqlite")
    for job_id, status in (("a" * 12, "running"), ("b" * 12, "queued"), ("c" * 12, "done")):
        db.execute("INSERT INTO jobs (id, kind, lane, argv, params, status, created) "
                   "VALUES (?, 'generate', 'work', '[]', '{}', ?, ?)", (job_id, status, time.time()))
    db.commit()
    db.close()
    with TestClient(create_app(studio_home)) as client:
        jobs = {j["id"]: j for j in client.get("/api/jobs").json()}
        assert jobs["a" * 12]["status"] == "interrupted" and jobs["b" * 12]["status"] == "interrupted"
        assert "continue" in jobs["a" * 12]["error"]
        assert jobs["c" * 12]["status"] == "done"


def test_a_token_guards_every_request(home):
    with TestClient(create_app(home, token="s3cret")) as client:
        refused = client.get("/api/runs")
        assert refused.status_code == 401 and "token" in refused.json()["detail"]
        assert client.get("/").status_code == 401
        assert client.get("/api/runs", headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert client.get("/api/runs", headers={"Authorization": "Bearer s3cret"}).status_code == 200
        # the address `serve` prints carries the token once; the page then uses a cookie
        page = client.get("/?token=s3cret")
        assert page.status_code == 200 and "musicrgan studio" in page.text
        runs = client.get("/api/runs")
        assert runs.status_code == 200 and "tiny" in [r["name"] for r in runs.json()]



def fuzzed(operation) -> list[tuple]:
    """(operation, status, body) for requests hypothesis generates from one operation of a
    schemathesis schema (the same ones on every run)."""
    from hypothesis import HealthCheck, given, settings
    answers = []

    @given(case=operation.as_strategy())
    @settings(max_examples=12, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    def call(case):
        response = case.call()
        answers.append((operation.label, response.status_code, response.text[:300]))
    call()
    return answers


def test_no_request_makes_the_server_fail(tmp_path, techno):
    """Every route, with requests generated from the API's own OpenAPI schema (valid and
    not): never a 5xx. The app's job lanes are paused (no workers): accepted jobs wait, so
    fuzzed requests start no processes, and the queues fill up to 429."""
    import schemathesis
    shutil.copytree(techno, tmp_path / "data" / "techno")
    app = create_app(tmp_path, lanes={"train": Lane(0, 3), "work": Lane(0, 3)})
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    operations = [result.ok() for result in schema.get_all_operations()]
    answers = [answer for operation in operations for answer in fuzzed(operation)]
    app.state.jobs.shutdown()
    assert len(operations) >= 20 and {a[0] for a in answers} == {o.label for o in operations}
    assert [a for a in answers if a[1] >= 500] == []
    assert {a[1] for a in answers} >= {200, 400, 404, 422}
