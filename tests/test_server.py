"""The HTTP API of ``simsearch serve``, through FastAPI's TestClient, on the real small index and real records.

The session's small index is served read-only; the test that adds to an index serves a
copy. Workspaces are opened on MIT-BIH 233 (not in the index) and on a two-minute excerpt
of it uploaded as WFDB files.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
import warnings
from pathlib import Path

import numpy as np
import pytest
import wfdb

pytest.importorskip("fastapi")
with warnings.catch_warnings():  # starlette's note on which httpx it prefers: not ours to act on
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

from helpers import wait_ready

from simsearch import BeatIndex, query_beat
from simsearch.server.app import create_app
from simsearch.server.signals import strip
from simsearch.server.state import ServerState
from simsearch.signal.records import load_record

RECORD = "233"
EXCERPT = "x233"
TOKEN = "s3cret-token-for-the-tests"


@pytest.fixture(scope="module")
def state(small_index, data_dir, tmp_path_factory):
    served = ServerState(small_index.path, data_dir, tmp_path_factory.mktemp("ws") / "workspaces",
                         encoder=small_index.encoder)
    yield served
    served.close()


@pytest.fixture(scope="module")
def client(state):
    with TestClient(create_app(state)) as c:
        yield c


@pytest.fixture(scope="module")
def excerpt(data_dir, tmp_path_factory) -> Path:
    """The first two minutes of 233 as a WFDB record of its own (no annotations)."""
    out = tmp_path_factory.mktemp("excerpt")
    rec = load_record(RECORD, data_dir)
    wfdb.wrsamp(EXCERPT, fs=rec.fs, units=["mV"], sig_name=[rec.lead], p_signal=rec.signal[: int(120 * rec.fs), None],
                fmt=["16"], write_dir=str(out))
    return out / EXCERPT


def is_error(response, status: int, words: str = "") -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert list(body) == ["error"] and "Traceback" not in body["error"] and "\n" not in body["error"]
    assert words.lower() in body["error"].lower(), body["error"]


def upload(client, files: dict[str, bytes], **fields):
    return client.post("/api/workspaces/upload", files=[("files", (name, data)) for name, data in files.items()],
                       data=fields)


def excerpt_files(excerpt: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in (excerpt.with_suffix(".hea"), excerpt.with_suffix(".dat"))}


# ---------------------------------------------------------------- index and queries

def test_info_docs_and_page(client, small_index):
    info = client.get("/api/info").json()
    assert info["catalog"]["beats"] == len(small_index) and info["encoder"]["fingerprint"] == small_index.fingerprint
    assert info["server"]["classes"] == ["N", "S", "V", "F", "Q"]
    assert client.get("/docs").status_code == 200
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/api/query", "/api/query/signal", "/api/workspaces/{wid}/propagate"} <= set(paths)
    page = client.get("/")
    assert page.status_code == 200 and "uPlot.iife.min.js" in page.text
    assert client.get("/static/vendor/uPlot.iife.min.js").status_code == 200
    assert client.get("/static/vendor/uPlot.LICENSE").status_code == 200


def test_query_answers_as_the_cli_json(client, small_index):
    answer = client.get("/api/query", params={"record": "208", "sample": 61785, "k": 5, "exclude_record": True})
    assert answer.status_code == 200
    assert answer.json() == json.loads(json.dumps(query_beat(small_index, "208", 61785, 5,
                                                             exclude_record=True).to_dict()))
    assert answer.json()["vote"]["label"] == "V" and all(n["record"] != "208" for n in answer.json()["neighbors"])
    only = client.get("/api/query", params={"record": "208", "sample": 61785, "k": 4, "classes": "S,F"}).json()
    assert {n["aami"] for n in only["neighbors"]} <= {"S", "F"}


def test_query_a_record_of_the_data_directory_and_a_raw_signal(client, data_dir):
    outside = client.get("/api/query", params={"record": RECORD, "sample": 1000, "k": 3}).json()
    assert outside["query"]["record"] == RECORD and len(outside["neighbors"]) == 3
    rec = load_record("119", data_dir)
    peak = 2488  # a VEB of 119, 10 s of signal around it
    signal = rec.signal[peak - 1800:peak + 1800]
    answer = client.post("/api/query/signal", json={"signal": signal.tolist(), "fs": rec.fs, "sample": 1800, "k": 5,
                                                    "exclude_records": ["119"]})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert set(body) == {"query", "neighbors", "vote"} and body["query"]["record"] is None
    assert abs(body["query"]["sample"] - 1800) < 0.15 * rec.fs and body["vote"]["label"] == "V"
    assert all(n["record"] != "119" for n in body["neighbors"])
    for fs in (0.01, 30, 1e6, 1e-300):  # no ECG's rate: refused before any resampling
        is_error(client.post("/api/query/signal", json={"signal": signal.tolist(), "fs": fs}), 422, "sampling rate")
    is_error(client.get("/api/query", params={"record": "a" * 1000, "sample": 1}), 404, "record not found")


def test_a_stored_beat_with_its_window_in_mv(client, small_index):
    beat_id = int(small_index.catalog.nearest_beat("208", 61785))
    beat = client.get(f"/api/beats/{beat_id}").json()
    assert beat["record"] == "208" and beat["aami"] == "V" and beat["grid"] == {"t0": -0.25, "fs": 360.0}
    window = np.array(beat["window"], dtype=float)
    assert window.size == 253 and 0.5 < np.ptp(window) < 10  # mV, baseline removed
    assert beat["rr"]["prematurity"] < 1
    is_error(client.get("/api/beats/999999999"), 404, "no beat with id")
    is_error(client.get("/api/beats/99999999999999999999999"), 422, "")  # past int64: invalid, not overflowed


@pytest.mark.parametrize("record, status, words", [
    ("../etc/passwd", 403, "leaves the data directory"),
    ("a/../../100", 403, "leaves the data directory"),
    ("/etc/passwd", 403, "absolute"),
    ("/work/shared/data/mitdb/100", 403, "absolute"),
    ("~root/100", 403, "absolute"),
    ("C:/x/100", 403, "absolute"),
    (".hidden", 403, "hidden"),
    ("a\\..\\100", 403, "not a path"),
    ("nope", 404, "record not found"),
])
def test_record_paths_stay_in_the_data_directory(client, record, status, words):
    is_error(client.get("/api/query", params={"record": record, "sample": 10}), status, words)
    is_error(client.post("/api/workspaces", json={"record": record}), status, words)


@pytest.mark.parametrize("params, status, words", [
    ({"record": "208", "sample": 10**9}, 422, "outside the record"),
    ({"record": "208", "sample": -1}, 422, "sample"),
    ({"record": "208", "sample": "x"}, 422, "sample"),
    ({"record": "208", "sample": 5, "k": 0}, 422, "k"),
    ({"record": "208", "sample": 5, "classes": "Z"}, 400, "classes"),
    ({"record": "208", "sample": 5, "lead": "V9"}, 422, "no lead"),
    ({"sample": 5}, 422, "record"),
])
def test_bad_queries_are_one_json_error(client, params, status, words):
    is_error(client.get("/api/query", params=params), status, words)


def test_bad_bodies_and_routes_are_json_errors(client):
    is_error(client.post("/api/query/signal", json={"signal": [0.0] * 10, "fs": 360}), 422, "too short")
    is_error(client.post("/api/query/signal", json={"signal": [0.1, 0.2] * 2000, "fs": -3}), 422, "fs")
    is_error(client.post("/api/query/signal", content=b"{not json", headers={"content-type": "application/json"}),
             422)
    flat = np.sin(np.arange(3600) / 30.0)
    body = json.dumps({"signal": [float("nan")] + flat.tolist(), "fs": 360})  # NaN: Python's JSON, not JSON's
    is_error(client.post("/api/query/signal", content=body, headers={"content-type": "application/json"}), 422, "nan")
    is_error(client.get("/api/workspaces/nosuchthing"), 404, "no workspace")
    is_error(client.get("/api/workspaces/..%2F..%2Fetc"), 404)
    is_error(client.get("/api/nowhere"), 404, "not found")
    is_error(client.delete("/api/info"), 405)


def test_symbolic_links_out_of_the_data_directory_are_refused(small_index, data_dir, tmp_path):
    served = tmp_path / "data"
    served.mkdir()
    shutil.copy(data_dir / "100.hea", served / "inside.hea")
    shutil.copy(data_dir / "100.dat", served / "100.dat")
    (served / "linked.hea").symlink_to(data_dir / "100.hea")  # the header itself points out
    (served / "sub").symlink_to(data_dir)  # a directory pointing out
    other = tmp_path / "other"
    other.mkdir()
    shutil.copy(data_dir / "100.hea", other / "datalink.hea")
    shutil.copy(data_dir / "100.hea", served / "datalink.hea")
    (served / "datalink.hea").write_text((data_dir / "100.hea").read_text().replace("100.dat", "../other/100.dat"))
    state = ServerState(small_index.path, served, tmp_path / "ws", encoder=small_index.encoder)
    try:
        with TestClient(create_app(state)) as c:
            assert c.get("/api/query", params={"record": "inside", "sample": 400}).status_code == 200
            for record in ("linked", "sub/100", "datalink"):
                is_error(c.get("/api/query", params={"record": record, "sample": 400}), 403, "outside the data")
    finally:
        state.close()


# ---------------------------------------------------------------- access token

def test_a_token_guards_every_api_request(state):
    with TestClient(create_app(state, token=TOKEN)) as c:
        is_error(c.get("/api/info"), 401, "access token")
        is_error(c.get("/api/info", headers={"Authorization": "Bearer wrong-token-wrong-token"}), 401)
        is_error(c.get("/api/workspaces", headers={"X-Simsearch-Token": TOKEN[:-1]}), 401)
        assert c.get("/api/info", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
        assert c.get("/api/workspaces", headers={"X-Simsearch-Token": TOKEN}).status_code == 200
        assert c.get("/").status_code == 200 and c.get("/static/app.js").status_code == 200


def test_serve_refuses_to_listen_beyond_localhost_without_a_token(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "SIMSEARCH_TOKEN"}
    proc = subprocess.run([sys.executable, "-m", "simsearch", "serve", str(tmp_path / "idx"), "--host", "0.0.0.0"],
                          capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 2 and proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and "access token" in lines[0], proc.stderr


@pytest.mark.parametrize("args, words", [
    (["--host", "192.168.1.5", "--port", "9000"], "access token"),
    (["--host", "0.0.0.0", "--token", "short"], "at least 16"),
    (["--port", "70000"], "--port"),
])
def test_serve_checks_where_it_listens_before_anything_loads(args, words, tmp_path, capsys, monkeypatch):
    from simsearch.cli import main

    monkeypatch.delenv("SIMSEARCH_TOKEN", raising=False)
    with pytest.raises(SystemExit) as exit_info:
        main(["serve", str(tmp_path / "idx"), *args])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and len(err.strip().splitlines()) == 1 and words in err, err


def test_serve_refuses_a_port_already_taken_before_anything_loads(tmp_path, capsys):
    from simsearch.cli import main

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with pytest.raises(SystemExit) as exit_info:
            main(["serve", str(tmp_path / "idx"), "--port", str(taken.getsockname()[1])])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and len(err.strip().splitlines()) == 1, err
    assert err.startswith("error: cannot listen on 127.0.0.1:") and "already in use" in err, err


def test_serve_as_a_user_starts_it(small_index, data_dir, tmp_path):
    """The command line's server, in its own process, on the port the system chose (``--port 0``): the line it
    prints names that port, and the API answers there."""
    proc = subprocess.Popen([sys.executable, "-m", "simsearch", "serve", str(small_index.path), "--port", "0",
                             "--data-dir", str(data_dir), "--workspace-dir", str(tmp_path / "ws")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert line.startswith("simsearch serving"), (line, proc.stderr.read() if proc.poll() is not None else "")
        url = line.split(" at ")[1].split()[0]
        assert url.startswith("http://127.0.0.1:") and not url.endswith(":0/"), line
        with urllib.request.urlopen(url + "api/info", timeout=30) as answer:
            assert json.load(answer)["catalog"]["beats"] == len(small_index)
    finally:
        proc.terminate()
        proc.wait(timeout=30)


# ---------------------------------------------------------------- review workspaces

@pytest.fixture(scope="module")
def workspace(client) -> str:
    opened = client.post("/api/workspaces", json={"record": RECORD, "by": "ana"})
    assert opened.status_code == 202 and opened.json()["status"]["state"] in ("queued", "reading", "embedding")
    states = wait_ready(client, opened.json()["id"])
    assert states[-1] == "ready"
    return opened.json()["id"]


def test_a_workspace_describes_its_record(client, workspace, data_dir):
    ws = client.get(f"/api/workspaces/{workspace}").json()
    rec = load_record(RECORD, data_dir)
    assert ws["record"] == RECORD and ws["status"]["progress"] == 1.0
    assert ws["signal"] == {"fs": rec.fs, "n_samples": rec.n_samples, "duration_s": rec.n_samples / rec.fs,
                            "lead": rec.lead, "units": "mV", "gaps_s": []}
    assert sum(ws["summary"]["by_class"].values()) == ws["summary"]["beats"] > 2000
    huge = 99999999999999999999999  # past int64: invalid (422), not overflowed (500)
    is_error(client.get(f"/api/workspaces/{workspace}/beats/{huge}"), 422, "")
    is_error(client.get(f"/api/workspaces/{workspace}/beats/-{huge}"), 422, "")
    is_error(client.delete(f"/api/workspaces/{workspace}/labels/{huge}"), 422, "")
    is_error(client.post(f"/api/workspaces/{workspace}/labels", json={"labels": [{"sample": huge, "label": "N"}]}),
             422, "")
    ectopy = ws["summary"]["ectopy"]  # 233: ventricular bigeminy, couplets and runs
    assert ectopy["V"]["beats"] == ws["summary"]["by_class"]["V"] and ectopy["V"]["bigeminy"] > 0
    assert 40 < ectopy["heart_rate"]["mean_bpm"] < 150
    beats = client.get(f"/api/workspaces/{workspace}/beats", params={"start": 10, "end": 20}).json()
    assert 5 < beats["total"] == len(beats["sample"]) < 40 and all(10 <= t < 20 for t in beats["time"])
    assert set(beats["label"]) <= set("NSVFQ") and all(0 <= c <= 1 for c in beats["confidence"])
    flagged = client.get(f"/api/workspaces/{workspace}/beats", params={"flagged": True}).json()
    assert 0 < flagged["total"] < ws["summary"]["beats"] and "N" not in {
        lab for lab, c in zip(flagged["label"], flagged["confidence"]) if c >= flagged["low_confidence"]}


def test_the_strip_is_decimated_per_bucket_or_raw_when_it_fits(client, workspace, data_dir):
    rec = load_record(RECORD, data_dir)
    whole = client.get(f"/api/workspaces/{workspace}/signal", params={"points": 1000}).json()
    assert whole["kind"] == "minmax" and len(whole["min"]) == len(whole["max"]) <= 1001
    assert min(whole["min"]) == pytest.approx(rec.signal.min(), abs=1e-3)
    assert max(whole["max"]) == pytest.approx(rec.signal.max(), abs=1e-3)
    detail = client.get(f"/api/workspaces/{workspace}/signal", params={"start": 10, "end": 12, "points": 1000}).json()
    assert detail["kind"] == "raw" and detail["start"] == 10 and len(detail["mv"]) == 720
    assert np.allclose(detail["mv"], rec.signal[3600:4320], atol=1e-3)
    is_error(client.get(f"/api/workspaces/{workspace}/signal", params={"start": 5, "end": 2}), 400, "after")
    is_error(client.get(f"/api/workspaces/{workspace}/signal", params={"start": 1e7, "end": 1e7 + 1}), 422)


def test_decimating_a_24_hour_recording_is_bounded():
    fs, n = 360.0, 24 * 3600 * 360
    signal = np.tile(np.sin(np.arange(3600, dtype=np.float32) / 50.0), n // 3600)
    signal[12345678] = 7.5
    start = time.perf_counter()
    out = strip(signal, fs, 0, n / fs, 2000)
    assert time.perf_counter() - start < 2.0
    assert out["kind"] == "minmax" and len(out["max"]) <= 2001 and max(out["max"]) == 7.5
    assert len(json.dumps(out)) < 100_000


def test_a_beat_with_its_neighbors_of_other_patients(client, workspace):
    suggestion = client.get(f"/api/workspaces/{workspace}/suggestions", params={"n": 1}).json()["suggestions"][0]
    beat = client.get(f"/api/workspaces/{workspace}/beats/{suggestion['sample']}", params={"k": 6}).json()
    assert beat["query"]["sample"] == beat["beat"]["sample"] == suggestion["sample"]
    assert len(beat["neighbors"]) == 6 and all(n["record"] != RECORD for n in beat["neighbors"])
    assert all(len(n["window"]) == len(beat["beat"]["window"]) == 253 for n in beat["neighbors"])
    assert {"prev_s", "next_s", "prematurity", "heart_rate_bpm"} <= set(beat["beat"]["rr"])
    assert all("prematurity" in n["rr"] for n in beat["neighbors"])
    assert set(beat["vote"]["scores"]) == set("NSVFQ") and set(beat["beat"]["scores"]) == set("NSVFQ")
    is_error(client.get(f"/api/workspaces/{workspace}/beats/999999999"), 422, "no beat within")


def test_labels_are_kept_as_given_and_never_suggested_again(client, workspace, state):
    asked = client.get(f"/api/workspaces/{workspace}/suggestions", params={"n": 6}).json()["suggestions"]
    assert len({s["sample"] for s in asked}) == 6
    given = {asked[0]["sample"]: "V", asked[1]["sample"] + 3: "A", asked[2]["sample"]: "N"}  # A: an APC, class S
    answer = client.post(f"/api/workspaces/{workspace}/labels",
                         json={"labels": [{"sample": s, "label": lab} for s, lab in given.items()], "by": "ana"})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["pending_propagation"] and body["summary"]["by_label_source"]["expert"] == 3
    stored = json.loads((state.workspace_dir / workspace / "workspace.json").read_text())  # on disk at once
    assert {int(s): (e["label"], e["symbol"], e["by"]) for s, e in stored["labels"].items()} == {
        asked[0]["sample"]: ("V", "V", "ana"), asked[1]["sample"]: ("S", "A", "ana"),
        asked[2]["sample"]: ("N", "N", "ana")}
    again = client.get(f"/api/workspaces/{workspace}/suggestions", params={"n": 20}).json()["suggestions"]
    assert not {s["sample"] for s in again} & {asked[0]["sample"], asked[1]["sample"], asked[2]["sample"]}
    is_error(client.post(f"/api/workspaces/{workspace}/labels", json={"labels": [{"sample": 5, "label": "Z"}]}),
             422, "unknown label")
    is_error(client.post(f"/api/workspaces/{workspace}/labels", json={"labels": []}), 422)
    fresh = asked[3]["sample"]
    for items, words in (([(fresh, "V"), (999_999_999, "N")], "no beat within"), ([(fresh, "V"), (fresh, "Z")],
                          "unknown label"), ([(fresh, "V"), (fresh + 2, "N")], "labeled twice in one request"),
                         ([(fresh, "V"), (fresh, None)], "labeled twice in one request")):
        is_error(client.post(f"/api/workspaces/{workspace}/labels",  # all or nothing: the first item is not stored
                             json={"labels": [{"sample": s, "label": lab} for s, lab in items]}), 422, words)
    assert len(client.get(f"/api/workspaces/{workspace}").json()["labels"]) == 3
    is_error(client.delete(f"/api/workspaces/{workspace}/labels/{asked[0]['sample']}", params={"by": "a\x01b"}),
             400, "by")
    is_error(client.post(f"/api/workspaces/{workspace}/labels",
                         json={"labels": [{"sample": asked[0]["sample"], "label": "V"}], "by": "x" * 65}), 422, "by")
    removed = client.delete(f"/api/workspaces/{workspace}/labels/{asked[2]['sample']}", params={"by": "bo"}).json()
    assert removed["changed"] == [{"sample": asked[2]["sample"], "label": None}] and len(removed["labels"]) == 2
    back = client.post(f"/api/workspaces/{workspace}/labels",
                       json={"labels": [{"sample": asked[2]["sample"], "label": "N"}], "by": "ana"}).json()
    assert len(back["labels"]) == 3
    listed = {w["id"]: w for w in client.get("/api/workspaces").json()["workspaces"]}[workspace]
    assert listed["expert_labels"] == 3 and listed["labeled_by"] == ["ana"] and listed["last_labeled"]


def test_propagation_reports_what_changed(client, workspace):
    before = client.get(f"/api/workspaces/{workspace}").json()
    report = client.post(f"/api/workspaces/{workspace}/propagate", json={"by": "ana"}).json()
    assert report["expert_labels"] == len(before["labels"]) >= 3
    assert sum(report["counts_before"].values()) == sum(report["counts_after"].values()) == before["summary"]["beats"]
    changed = sum(abs(report["counts_after"][c] - report["counts_before"][c]) for c in "NSVFQ")
    assert report["switched_count"] >= changed / 2 and len(report["switched"]) == min(report["switched_count"], 500)
    assert all(s["from"] != s["to"] for s in report["switched"])
    after = client.get(f"/api/workspaces/{workspace}").json()
    assert not after["pending_propagation"] and after["summary"]["by_class"] == report["counts_after"]
    assert [e["action"] for e in after["events"]][-1] == "propagate"


def test_export_writes_an_annotation_wfdb_reads(client, workspace, state, tmp_path):
    exported = client.post(f"/api/workspaces/{workspace}/export", json={"ext": "pred"}).json()
    assert exported["files"] == {"wfdb": "233.pred", "csv": "233.pred.csv", "json": "233.pred.json"}
    export_dir = state.workspace_dir / workspace / "export"
    ann = wfdb.rdann(str(export_dir / RECORD), "pred")
    labels = {int(s): lab for s, lab in ((e["sample"], e["label"]) for e in
                                         client.get(f"/api/workspaces/{workspace}").json()["labels"])}
    assert len(ann.sample) == client.get(f"/api/workspaces/{workspace}").json()["summary"]["beats"]
    symbols = dict(zip(ann.sample.tolist(), ann.symbol))
    assert all(symbols[s] in {"V": "V", "S": "A", "N": "N"}[lab] for s, lab in labels.items())
    download = client.get(exported["urls"]["wfdb"])
    assert download.status_code == 200 and download.content == (export_dir / "233.pred").read_bytes()
    is_error(client.post(f"/api/workspaces/{workspace}/export", json={"ext": "atr"}), 422, "refusing")
    is_error(client.get(f"/api/workspaces/{workspace}/files/workspace.json"), 404, "no exported file")
    is_error(client.get(f"/api/workspaces/{workspace}/files/..%2Fworkspace.json"), 404)


def test_a_restarted_server_keeps_every_label(client, workspace, state, small_index, data_dir):
    labels = client.get(f"/api/workspaces/{workspace}").json()["labels"]
    assert labels
    again = ServerState(small_index.path, data_dir, state.workspace_dir, encoder=small_index.encoder)
    try:
        with TestClient(create_app(again)) as fresh:
            assert [w["id"] for w in fresh.get("/api/workspaces").json()["workspaces"]] == [workspace]
            fresh.get(f"/api/workspaces/{workspace}")
            wait_ready(fresh, workspace)
            ws = fresh.get(f"/api/workspaces/{workspace}").json()
            assert ws["labels"] == labels and ws["summary"]["by_label_source"]["expert"] == len(labels)
            beats = fresh.get(f"/api/workspaces/{workspace}/beats").json()
            expert = {s: lab for s, lab, src in zip(beats["sample"], beats["label"], beats["label_source"])
                      if src == "expert"}
            assert expert == {e["sample"]: e["label"] for e in labels}
    finally:
        again.close()


# ---------------------------------------------------------------- uploads and adding to the index

def test_an_uploaded_record_is_read_before_it_is_kept(client, state, excerpt):
    before = sorted(p.name for p in state.workspace_dir.iterdir() if p.name != ".tmp")
    bad = [
        ({"x233.dat": excerpt.with_suffix(".dat").read_bytes()}, 400, "header"),
        ({"x233.hea": excerpt.with_suffix(".hea").read_bytes()}, 404, "signal file missing"),
        ({"x233.hea": excerpt.with_suffix(".hea").read_bytes(), "x233.dat": b"\0" * 100}, 422, "truncated"),
        ({"x233.hea": b"garbage\n", "x233.dat": b"\0" * 100}, 422, ""),
        ({".x233.hea": b"x", "x233.dat": b"x"}, 400, "plain name"),
        ({"x 233.hea": b"x"}, 400, "plain name"),
    ]
    for files, status, words in bad:
        is_error(upload(client, files), status, words)
    is_error(upload(client, excerpt_files(excerpt), lead="V9"), 422, "no lead")
    is_error(client.post("/api/workspaces/upload", json={"x": 1}), 400, "multipart")
    is_error(client.post("/api/workspaces/upload", content=b"garbage-without-boundary",
                         headers={"content-type": "multipart/form-data; boundary=XYZ"}), 400, "multipart")
    is_error(upload(client, excerpt_files(excerpt), by="a\tb"), 400, "")  # refused after the files came
    is_error(upload(client, excerpt_files(excerpt), beats="bogus"), 400, "beats must be")
    limit, state.max_upload_bytes = state.max_upload_bytes, 10_000
    try:
        is_error(upload(client, excerpt_files(excerpt)), 413, "over the limit")
    finally:
        state.max_upload_bytes = limit
    assert sorted(p.name for p in state.workspace_dir.iterdir() if p.name != ".tmp") == before  # nothing kept
    assert not any((state.workspace_dir / ".tmp").iterdir())


def test_a_recording_with_a_gap_is_reviewed_with_the_gap_shown(client, data_dir, tmp_path):
    """Five seconds of invalid signal (WFDB's invalid sample value): the workspace opens, says where the gap is
    (the page shades it), and labels the beats whose windows reach into it Q, doubted."""
    rec = load_record(RECORD, data_dir)
    signal = rec.signal[: int(60 * rec.fs)].copy()
    signal[int(20 * rec.fs):int(25 * rec.fs)] = np.nan
    wfdb.wrsamp("gap233", fs=rec.fs, units=["mV"], sig_name=[rec.lead], p_signal=signal[:, None], fmt=["16"],
                write_dir=str(tmp_path))
    opened = upload(client, excerpt_files(tmp_path / "gap233"), by="ana")
    assert opened.status_code == 202, opened.text
    wait_ready(client, opened.json()["id"])
    ws = client.get(f"/api/workspaces/{opened.json()['id']}").json()
    assert ws["signal"]["gaps_s"] == [[20.0, 25.0]]
    beats = client.get(f"/api/workspaces/{opened.json()['id']}/beats", params={"start": 18, "end": 27}).json()
    doubted = [t for t, source in zip(beats["time"], beats["label_source"]) if source == "doubted"]
    assert doubted and all(19 < t < 26 for t in doubted)  # the beats around it
    assert not [t for t in beats["time"] if 20.3 < t < 24.7]  # none in it
    assert ws["summary"]["by_label_source"]["doubted"] == len(doubted)


def test_upload_label_and_add_to_a_copy_of_the_index(small_index, data_dir, excerpt, tmp_path):
    copy = tmp_path / "index"
    shutil.copytree(small_index.path, copy)
    generation = small_index.generation
    served = ServerState(copy, data_dir, tmp_path / "ws", encoder=small_index.encoder)
    try:
        with TestClient(create_app(served)) as c:
            opened = upload(c, excerpt_files(excerpt), by="bo")
            assert opened.status_code == 202, opened.text
            wid = opened.json()["id"]
            assert opened.json()["source"] == "upload" and opened.json()["record"] == EXCERPT
            wait_ready(c, wid)
            assert (tmp_path / "ws" / wid / "record" / "x233.hea").is_file()
            asked = c.get(f"/api/workspaces/{wid}/suggestions", params={"n": 2}).json()["suggestions"]
            c.post(f"/api/workspaces/{wid}/labels",
                   json={"labels": [{"sample": s["sample"], "label": "V"} for s in asked], "by": "bo"})
            added = c.post(f"/api/workspaces/{wid}/add-to-index", json={"by": "bo"}).json()
            ws = c.get(f"/api/workspaces/{wid}").json()
            assert added["added"] == ws["summary"]["beats"] and added["record"] == EXCERPT
            info = c.get("/api/info").json()
            assert EXCERPT in info["records"] and info["catalog"]["by_label_source"]["expert"] == 2
            assert info["generation"] == added["generation"] > generation
            stored = c.get("/api/query", params={"record": EXCERPT, "sample": asked[0]["sample"], "k": 3}).json()
            assert stored["query"]["aami"] == "V"
            assert [e["action"] for e in ws["events"]][-2:] == ["propagate", "add-to-index"]
        reopened = BeatIndex.open(copy)
        assert EXCERPT in [r["name"] for r in reopened.catalog.records()]
        reopened.close()
    finally:
        served.close()
    assert small_index.generation == generation
    assert EXCERPT not in [r["name"] for r in BeatIndex.open(small_index.path).catalog.records()]
