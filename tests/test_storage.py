"""Crash safety, concurrency, id stability and bad stored input of the index directory.

Everything is real: MIT-BIH records, FAISS, SQLite, the packaged model. Writers run in
subprocesses that are killed with SIGKILL, at the named checkpoints of a write
($SIMSEARCH_FAULT_POINT, see :mod:`simsearch.store.layout`) or at random moments; after
each kill the index must be the old one or the new one, open (which checks that FAISS
and the catalog hold the same ids), and answer a query.

Most writers add beats that were already embedded, through the API: they need no
TensorFlow and start in under a second. One build and one add go through the command
line with the real model. Indexes are copies of the session's small index, never rebuilt.
"""

from __future__ import annotations

import errno
import json
import os
import pickle
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import faiss
import numpy as np
import pytest
from filelock import FileLock

from simsearch import BeatIndex
from simsearch.errors import BeatNotFoundError, IndexBusyError, IndexFormatError, IndexWriteError, ParameterError
from simsearch.label.query import query_beat
from simsearch.signal.beats import beats_from_record
from simsearch.signal.records import load_record
from simsearch.store import layout
from simsearch.store.index import CATALOG, MANIFEST, VECTORS

JOB_BEATS = 400
"""Beats per pre-embedded write: enough rows to matter, little to pickle."""
QUERY = ("119", 5000)
"""A stored beat every index here holds (record 119 is in every base and every state)."""

ZYGOTE = r"""
import os, pickle, sys
from simsearch.store.index import BeatIndex

def write(path, payload, rounds):
    with open(payload, "rb") as f:
        jobs = pickle.load(f)
    for i in range(rounds):
        beats, vectors = jobs[i % len(jobs)]
        with BeatIndex.updating(path) as index:
            index.add_beats(beats, vectors, record_path=beats.record, n_samples=650000, label_source="reference")

ended = {}
for line in sys.stdin:
    command, *args = line.rstrip("\n").split("\t")
    if command in ("wait", "poll"):
        pid = int(args[0])
        if pid not in ended:
            done, status = os.waitpid(pid, 0 if command == "wait" else os.WNOHANG)
            if done:
                ended[pid] = status
        print(ended.get(pid, -1), flush=True)
        continue
    path, payload, rounds, fault = args
    pid = os.fork()
    if pid == 0:
        os.dup2(2, 1)
        if fault:
            os.environ["SIMSEARCH_FAULT_POINT"] = fault
        try:
            write(path, payload, int(rounds))
        except BaseException:
            import traceback
            traceback.print_exc()
            os._exit(1)
        os._exit(0)
    print(pid, flush=True)
"""
"""Starts writer processes: each is a fork of one process that imported simsearch (and
no TensorFlow) once, so a writer starts in milliseconds instead of a second. Each writer
adds pre-embedded records, one write per round."""


class Zygote:
    """The test's handle on :data:`ZYGOTE`: start writers, wait for them, read how they ended."""

    def __init__(self, log: Path):
        self.log = log.open("w")
        self.proc = subprocess.Popen([sys.executable, "-c", ZYGOTE], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self.log, text=True)

    def _ask(self, *fields) -> int:
        self.proc.stdin.write("\t".join(map(str, fields)) + "\n")
        self.proc.stdin.flush()
        answer = self.proc.stdout.readline()
        assert answer, f"the writer zygote died: {self.log.name}"
        return int(answer)

    def start(self, path: Path, payload: Path, rounds: int, fault: str = "") -> int:
        """Fork a writer; its pid."""
        return self._ask("run", path, payload, rounds, fault)

    def wait(self, pid: int) -> int:
        """The writer's wait status (os.WIFSIGNALED and friends read it)."""
        return self._ask("wait", pid)

    def running(self, pid: int) -> bool:
        return self._ask("poll", pid) == -1

    def errors(self) -> str:
        self.log.flush()
        return Path(self.log.name).read_text()[-3000:]

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=30)
        self.log.close()


def killed(status: int) -> bool:
    return os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL


def succeeded(status: int) -> bool:
    return os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0


# ------------------------------------------------------------------ helpers
def stored_job(index: BeatIndex, data_dir, record: str, name: str) -> tuple:
    """(beats, vectors) of the first JOB_BEATS beats of ``record``, stored under ``name``, with
    the embeddings the index holds for them (the real model's, without running it)."""
    beats = beats_from_record(load_record(record, data_dir)).take(np.arange(JOB_BEATS))
    ids = index.catalog.beats(record=record)["id"][:JOB_BEATS].astype(np.int64)
    vectors = np.stack([index.vectors.reconstruct(int(i)) for i in ids])
    return replace(beats, record=name), vectors


def copy_index(source: BeatIndex, target: Path) -> Path:
    """A private copy of an index; an external SQLite catalog is copied too and the copy points at it."""
    shutil.copytree(source.path, target)
    url = source.manifest["catalog_url"]
    if url:
        db = target.parent / f"{target.name}.db"
        shutil.copyfile(url.removeprefix("sqlite:///"), db)
        manifest_path = target / source.directory.name / MANIFEST
        manifest = json.loads(manifest_path.read_text())
        manifest["catalog_url"] = f"sqlite:///{db}"
        manifest_path.write_text(json.dumps(manifest))
        with sqlite3.connect(db) as conn:
            conn.execute("UPDATE simsearch_meta SET value = ? WHERE key = 'owner'", (str(target),))
    return target


def state(path: Path) -> tuple:
    """Open the index, check it through and through, and return (record names, beats)."""
    index = BeatIndex.open(path)  # refuses vectors and catalog that disagree
    try:
        names = tuple(r["name"] for r in index.catalog.records())
        assert len(index) == index.catalog.counts()["beats"] == int(index.manifest["n_vectors"])
        assert np.array_equal(np.sort(faiss.vector_to_array(index.vectors.id_map)), index.catalog.ids())
        result = query_beat(index, *QUERY, k=5)
        assert len(result.neighbors) == 5 and result.vote.label
        return names, len(index)
    finally:
        index.close()


def expected_states(base: BeatIndex, jobs: list) -> list[tuple]:
    """The states a writer running ``jobs`` in turn can leave: before any job, after each."""
    records = {r["name"]: r["n_beats"] for r in base.catalog.records()}
    states = [(tuple(sorted(records)), sum(records.values()))]
    for beats, _ in jobs:
        records[beats.record] = len(beats)
        states.append((tuple(sorted(records)), sum(records.values())))
    return states


def leftovers(path: Path) -> list[str]:
    return sorted(p.name for p in path.iterdir() if layout.TMP_MARK in p.name)


def generations(path: Path) -> list[str]:
    return sorted(p.name for p in path.iterdir() if layout.generation_number(p.name) is not None)


def add_in_process(path: Path, job) -> np.ndarray:
    beats, vectors = job
    with BeatIndex.updating(path) as index:
        return index.add_beats(beats, vectors, record_path=beats.record, n_samples=650000, label_source="reference")


def cli(*args, env=None, timeout=120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "simsearch", *map(str, args)], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=timeout)


def assert_one_line_error(proc, pattern: str) -> None:
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2 and len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert pattern in lines[0], lines[0]


# ------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module")
def jobs(small_index, data_dir) -> list:
    """Two writes: a new record w1 (beats of 208), then record 119 replaced by its first beats."""
    return [stored_job(small_index, data_dir, "208", "w1"), stored_job(small_index, data_dir, "119", "119")]


@pytest.fixture(scope="module")
def payload(jobs, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("payload") / "jobs.pickle"
    path.write_bytes(pickle.dumps(jobs))
    return path


@pytest.fixture(scope="module")
def zygote(tmp_path_factory):
    started = Zygote(tmp_path_factory.mktemp("zygote") / "stderr.txt")
    yield started
    started.close()


@pytest.fixture(scope="module")
def external_index(small_index, data_dir, tmp_path_factory) -> BeatIndex:
    """An index of 119 whose catalog is an SQLite file outside it, named by a relative URL."""
    where = tmp_path_factory.mktemp("external")
    cwd = os.getcwd()
    os.chdir(where)
    try:
        index = BeatIndex.build(where / "idx", ["119"], data_dir, encoder=small_index.encoder,
                                catalog_url="sqlite:///external.db", leads="one")
    finally:
        os.chdir(cwd)
    assert index.manifest["catalog_url"] == f"sqlite:///{where / 'external.db'}"  # made absolute, once
    assert not (index.directory / CATALOG).exists()
    return index


@pytest.fixture(params=["inside", "external"])
def base(request, small_index, external_index) -> BeatIndex:
    return small_index if request.param == "inside" else external_index


# ------------------------------------------------------------------ crashes
@pytest.mark.parametrize("point", layout.FAULT_POINTS)
def test_a_writer_killed_at_each_checkpoint_leaves_the_old_or_the_new_index(point, base, jobs, payload, zygote,
                                                                            tmp_path):
    path = copy_index(base, tmp_path / "idx")
    states = expected_states(base, jobs)
    assert state(path) == states[0]
    assert killed(zygote.wait(zygote.start(path, payload, rounds=2, fault=point))), zygote.errors()
    # the pointer moves only at the os.replace; cleanup comes after the second write's publication
    after = {"after-pointer": 1, "cleanup": 2}.get(point, 0)
    assert state(path) == states[after]
    before = BeatIndex.open(path)
    seen = set(before.catalog.ids())
    # the next writer recovers: it finishes, and leaves nothing of the crash behind
    new_ids = add_in_process(path, jobs[0 if after == 0 else 1])
    assert not set(new_ids) & seen
    assert state(path) == states[1 if after == 0 else 2]
    assert leftovers(path) == [] and len(generations(path)) <= 1 + layout.KEEP_PREVIOUS
    assert before.catalog.beats(ids=np.array(sorted(seen)[:3]))["record"].size == 3  # an old reader still reads


@pytest.mark.parametrize("seed", range(2))
def test_writers_killed_at_random_moments(seed, base, jobs, payload, zygote, tmp_path):
    path = copy_index(base, tmp_path / "idx")
    states = expected_states(base, jobs)
    delay = random.Random(seed).uniform(0.02, 0.6)  # a write takes 0.1 to 0.3 s
    pid = zygote.start(path, payload, rounds=8)
    time.sleep(delay)
    os.kill(pid, signal.SIGKILL)  # our own writer, not yet waited for, so its pid is still its own
    zygote.wait(pid)
    assert state(path) in states, f"killed after {delay:.2f} s"
    add_in_process(path, jobs[0])
    assert state(path) in states[1:] and leftovers(path) == []


def test_build_and_add_killed_on_the_command_line(small_index, data_dir, tmp_path):
    """The real thing: the CLI with the packaged model. The build is killed just before it
    publishes (all its work done), the add as soon as its staging directory exists."""
    built, added = copy_index(small_index, tmp_path / "built"), copy_index(small_index, tmp_path / "added")
    runs = {"before-pointer": ["build", built, "--records", "100"],
            "staging-created": ["add", added, "--records", "101"]}
    procs = [subprocess.Popen([sys.executable, "-m", "simsearch", *map(str, args), "--data-dir", str(data_dir)],
                              env={**os.environ, layout.FAULT_ENV: point}, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE) for point, args in runs.items()]
    for proc in procs:
        _, err = proc.communicate(timeout=240)
        assert proc.returncode == -signal.SIGKILL, err
    # the build left a complete generation that was never published, the add its staging directory:
    # no reader follows either, and the next writer (or reader, when no writer is at work) removes them
    assert generations(built) == ["gen-000001", "gen-000002"] and len(leftovers(built)) == 1  # the pointer's temp
    assert generations(added) == ["gen-000001"] and len(leftovers(added)) == 1
    expected = state(small_index.path)
    assert state(built) == expected and state(added) == expected
    assert generations(built) == ["gen-000001"] and leftovers(built) == leftovers(added) == []
    add_in_process(built, stored_job(small_index, data_dir, "208", "w1"))
    assert generations(built) == ["gen-000001", "gen-000002"]


# ------------------------------------------------------------------ concurrency
def test_readers_never_see_half_an_index_while_a_writer_publishes(small_index, jobs, payload, zygote, tmp_path):
    path = copy_index(small_index, tmp_path / "idx")
    states = expected_states(small_index, jobs)
    long_lived = BeatIndex.open(path)
    query_beat(long_lived, *QUERY, k=5)  # warm (first-call imports) before the writer's clock starts
    writer = zygote.start(path, payload, rounds=24)  # long enough to overlap reads even on a loaded machine
    reads, errors, deadline = 0, [], time.monotonic() + 60
    while reads < 2000 and time.monotonic() < deadline and zygote.running(writer):  # bounded whatever happens
        try:
            assert state(path) in states
            query_beat(long_lived, *QUERY, k=5)  # opened before every write, still answers
        except Exception as exc:  # collected, so the writer is waited for
            errors.append(repr(exc))
            break
        reads += 1
    assert succeeded(zygote.wait(writer)), zygote.errors()
    assert not errors, errors
    assert reads >= 2
    assert state(path) == states[2]
    assert len(query_beat(long_lived, *QUERY, k=5).neighbors) == 5


def test_two_writers_both_land(jobs, small_index, zygote, tmp_path):
    path = copy_index(small_index, tmp_path / "idx")
    one_each = [tmp_path / "w1.pickle", tmp_path / "w2.pickle"]
    beats, vectors = jobs[0]
    one_each[0].write_bytes(pickle.dumps([jobs[0]]))
    one_each[1].write_bytes(pickle.dumps([(replace(beats, record="w2"), vectors)]))
    writers = [zygote.start(path, p, rounds=1) for p in one_each]
    assert all(succeeded(zygote.wait(pid)) for pid in writers), zygote.errors()
    names, n = state(path)
    assert {"w1", "w2"} <= set(names) and n == len(small_index) + 2 * JOB_BEATS
    assert generations(path) == ["gen-000002", "gen-000003"]


def test_a_writer_waits_for_the_lock_then_says_so_and_readers_never_wait(small_index, jobs, tmp_path):
    path = copy_index(small_index, tmp_path / "idx")
    held = FileLock(path / layout.LOCK)
    held.acquire()
    try:
        start = time.monotonic()
        with pytest.raises(IndexBusyError, match="another process"), BeatIndex.updating(path, lock_timeout=0.3):
            pass
        assert time.monotonic() - start >= 0.3
        assert state(path)[1] == len(small_index)  # a reader opens at once
    finally:
        held.release()
    assert leftovers(path) == []
    add_in_process(path, jobs[0])


# ------------------------------------------------------------------ ids
def test_ids_are_never_reused(small_index, data_dir, jobs, tmp_path):
    path = copy_index(small_index, tmp_path / "idx")
    index = BeatIndex.open(path)
    first_max = int(index.catalog.ids().max())
    saved_119 = index.catalog.beats(record="119")["id"][:5].astype(np.int64)
    saved_208 = index.catalog.beats(record="208")
    index.close()
    # the record with the highest ids (209, last built) is replaced: its new ids are all new
    job = stored_job(small_index, data_dir, "209", "209")
    ids_a = add_in_process(path, job)
    assert ids_a.min() > first_max
    ids_b = add_in_process(path, job)
    assert ids_b.min() > ids_a.max()
    ids_c = add_in_process(path, jobs[1])  # 119 replaced
    index = BeatIndex.open(path)
    with pytest.raises(BeatNotFoundError, match=str(saved_119[0])):
        index.catalog.beats(ids=saved_119)  # replaced: reported missing, never another beat
    with pytest.raises(BeatNotFoundError):
        index.catalog.beats(ids=ids_a)
    again = index.catalog.beats(ids=saved_208["id"][:50])
    assert list(again["sample"]) == list(saved_208["sample"][:50]) and set(again["record"]) == {"208"}
    assert index.catalog.next_id == ids_c.max() + 1
    index.close()
    # a rebuild at the same path continues the counter
    rebuilt = BeatIndex.build(path, ["100"], data_dir, encoder=small_index.encoder)
    assert rebuilt.catalog.ids().min() > ids_c.max()
    with pytest.raises(BeatNotFoundError):
        rebuilt.catalog.beats(ids=saved_208["id"][:1])


def test_external_catalog_keeps_ids_and_generations_in_step(external_index, small_index, jobs, tmp_path):
    path = copy_index(external_index, tmp_path / "idx")
    db = tmp_path / "idx.db"
    add_in_process(path, jobs[0])
    add_in_process(path, jobs[1])
    index = BeatIndex.open(path)
    assert index.generation == 3 and index.catalog.generations == (2, 3)
    index.close()
    # a catalog from another moment does not pair with these vectors
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE simsearch_meta SET value = '1' WHERE key = 'written'")
    with pytest.raises(IndexFormatError, match="do not belong together"):
        BeatIndex.open(path)
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE simsearch_meta SET value = '3' WHERE key = 'written'")
        conn.execute("UPDATE simsearch_meta SET value = 'other' WHERE key = 'index_uid'")
    with pytest.raises(IndexFormatError, match="belongs to another index"):
        BeatIndex.open(path)
    # two indexes never share one catalog
    with pytest.raises(IndexFormatError, match="belongs to the index at"):
        BeatIndex.build(tmp_path / "second", [], encoder=small_index.encoder, catalog_url=f"sqlite:///{db}")
    assert not (tmp_path / "second").exists()
    # a missing catalog is named, not silently recreated empty
    db.unlink()
    with pytest.raises(IndexFormatError, match="is missing"):
        BeatIndex.open(path)
    assert not db.exists()


# ------------------------------------------------------------------ bad stored input
def _manifest(path: Path) -> Path:
    return path / "gen-000001" / MANIFEST


def _edit_manifest(path: Path, **changes) -> None:
    manifest = json.loads(_manifest(path).read_text())
    for key, value in changes.items():
        if value is None:
            manifest.pop(key, None)
        else:
            manifest[key] = value
    _manifest(path).write_text(json.dumps(manifest))


def _write_faiss(path: Path, index) -> None:
    (path / "gen-000001" / VECTORS).unlink()
    faiss.write_index(index, str(path / "gen-000001" / VECTORS))


def _drop_one_vector(path: Path) -> None:
    vectors = faiss.read_index(str(path / "gen-000001" / VECTORS))
    vectors.remove_ids(np.array([faiss.vector_to_array(vectors.id_map)[0]], dtype=np.int64))
    _write_faiss(path, vectors)
    _edit_manifest(path, n_vectors=int(vectors.ntotal))


def _edit_catalog(path: Path, sql: str) -> None:
    with sqlite3.connect(path / "gen-000001" / CATALOG) as conn:
        conn.execute(sql)


def _foreign_sqlite(file: Path) -> None:
    file.unlink()
    with sqlite3.connect(file) as conn:
        conn.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, text TEXT)")


CORRUPTIONS = {
    "manifest is a list": (lambda p: _manifest(p).write_text("[]"), "not a manifest"),
    "manifest is empty": (lambda p: _manifest(p).write_text("{}"), "index format None"),
    "manifest has only a format": (lambda p: _manifest(p).write_text('{"format": 2}'), "is missing or wrong"),
    "manifest without encoder": (lambda p: _edit_manifest(p, encoder=None), "encoder is missing or wrong"),
    "manifest with a text dim": (lambda p: _edit_manifest(p, encoder={"fingerprint": "x", "dim": "32"}),
                                 "encoder.dim"),
    "manifest with unknown leads": (lambda p: _edit_manifest(p, leads="three"), "leads is missing or wrong"),
    "manifest of both leads, no weight": (lambda p: _edit_manifest(p, leads="both", second_lead_weight=0),
                                          "second_lead_weight is missing or wrong"),
    "manifest of both leads over one-lead vectors": (lambda p: _edit_manifest(p, leads="both", second_lead_weight=1.5),
                                                     "the encoder gives 64 \\(leads: both\\)"),
    "manifest is binary": (lambda p: _manifest(p).write_bytes(b"\x00\xff\xfe garbage"), "is corrupt"),
    "manifest of format 1": (lambda p: _edit_manifest(p, format=1), "rebuild the index"),
    "beats cut by an older simsearch": (lambda p: _edit_manifest(p, beat_format=None),
                                        "older simsearch, which recorded no beat format;.*rebuild the index"),
    "beats cut otherwise": (lambda p: _edit_manifest(p, beat_format=1), "cut as beat format 1;.*rebuild the index"),
    "zero-byte catalog": (lambda p: (p / "gen-000001" / CATALOG).write_bytes(b""), "not a simsearch catalog"),
    "foreign SQLite catalog": (lambda p: _foreign_sqlite(p / "gen-000001" / CATALOG), "not a simsearch catalog"),
    "catalog not SQLite": (lambda p: (p / "gen-000001" / CATALOG).write_text("id,record\n1,100\n" * 200),
                           "file is not a database"),
    "garbage vectors": (lambda p: (p / "gen-000001" / VECTORS).write_bytes(b"not FAISS" * 500), "not a FAISS index"),
    "empty vectors": (lambda p: (p / "gen-000001" / VECTORS).write_bytes(b""), "not a FAISS index"),
    "foreign FAISS index": (lambda p: _write_faiss(p, faiss.IndexFlatL2(32)), "not the inner-product IndexIDMap2"),
    "vectors of another dimension": (lambda p: _write_faiss(p, faiss.IndexIDMap2(faiss.IndexFlatIP(16))),
                                     "16 dimensions"),
    "a vector missing": (_drop_one_vector, "do not hold the same beats"),
    "a beat missing from the catalog": (lambda p: _edit_catalog(p, "DELETE FROM beats WHERE id = (SELECT min(id) + 7 "
                                                                   "FROM beats)"), "do not hold the same beats"),
    "a beat id changed in the catalog": (lambda p: _edit_catalog(p, "UPDATE beats SET id = (SELECT max(id) + 1 FROM "
                                                                    "beats) WHERE id = (SELECT min(id) FROM beats)"),
                                         "do not hold the same beats"),
    "garbage pointer": (lambda p: (p / layout.POINTER).write_text("../../etc"), "names no generation"),
    "pointer to nothing": (lambda p: (p / layout.POINTER).write_text("gen-000009\n"), "which is missing"),
    "no pointer": (lambda p: (p / layout.POINTER).unlink(), "first build did not finish"),
}


@pytest.mark.parametrize("case", CORRUPTIONS)
def test_bad_stored_input_is_one_clear_error(case, small_index, tmp_path):
    path = copy_index(small_index, tmp_path / "idx")
    corrupt, message = CORRUPTIONS[case]
    corrupt(path)
    with pytest.raises(IndexFormatError, match=message):
        BeatIndex.open(path)
    if case == "foreign SQLite catalog":  # the command line says the same in one line
        assert_one_line_error(cli("info", path), message)


def test_an_index_of_the_old_flat_layout_asks_for_a_rebuild(small_index, data_dir, tmp_path):
    path = tmp_path / "old"
    path.mkdir()
    for name in (MANIFEST, VECTORS, CATALOG):
        shutil.copyfile(small_index.directory / name, path / name)
    _manifest_text = json.loads((path / MANIFEST).read_text())
    (path / MANIFEST).write_text(json.dumps({**_manifest_text, "format": 1}))
    with pytest.raises(IndexFormatError, match="older simsearch .* rebuild it"):
        BeatIndex.open(path)
    with pytest.raises(IndexFormatError, match="older simsearch"), BeatIndex.updating(path):
        pass
    assert sorted(os.listdir(path)) == [CATALOG, MANIFEST, VECTORS]  # refused without a trace
    BeatIndex.build(path, [], encoder=small_index.encoder)  # a build replaces it; the flat files go
    assert sorted(os.listdir(path)) == [layout.LOCK, layout.POINTER, "gen-000001"]


def test_a_full_disk_fails_in_one_line_and_leaves_the_index_as_it_was(small_index, jobs, tmp_path, monkeypatch):
    path = copy_index(small_index, tmp_path / "idx")
    before = state(path)

    def full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(IndexWriteError, match="No space left on device") as failed:
        add_in_process(path, jobs[0])
    assert "\n" not in str(failed.value) and "as it was" in str(failed.value)
    with pytest.raises(IndexWriteError, match="No space left on device"):
        BeatIndex.build(path, [], encoder=small_index.encoder)
    with pytest.raises(IndexWriteError, match="No space left on device"):
        BeatIndex.build(tmp_path / "new", [], encoder=small_index.encoder)
    monkeypatch.undo()
    assert state(path) == before
    assert leftovers(path) == [] and generations(path) == ["gen-000001"]
    assert not (tmp_path / "new").exists()  # a failed first build leaves no directory behind


@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
def test_a_read_only_index_directory_fails_in_one_line(small_index, data_dir, tmp_path):
    path = copy_index(small_index, tmp_path / "idx")
    prefix = []
    if os.geteuid() == 0:  # root ignores permission bits unless it drops the capability
        if not shutil.which("setpriv"):
            pytest.skip("running as root without setpriv")
        prefix = ["setpriv", "--bounding-set", "-dac_override,-dac_read_search"]
    modes = {p: p.stat().st_mode for p in [path, *path.rglob("*")]}
    for p in modes:
        p.chmod(0o555 if p.is_dir() else 0o444)
    try:
        records = ["--records", "101", "--data-dir", data_dir]
        commands = (["add", path, *records], ["build", path, *records], ["info", path, "--json"])
        procs = [subprocess.Popen([*prefix, sys.executable, "-m", "simsearch", *map(str, args)], text=True,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE) for args in commands]
        add, build, info = [subprocess.CompletedProcess(p.args, p.wait(timeout=120), *p.communicate()) for p in procs]
        for proc in (add, build):  # a writer fails at once, before loading the model
            assert_one_line_error(proc, "cannot lock the index")
            assert "ermission denied" in proc.stderr
        assert info.returncode == 0, info.stderr  # readers need no write access
    finally:
        for p, mode in modes.items():
            p.chmod(mode)
    assert state(path)[1] == len(small_index) and leftovers(path) == []


def test_catalog_urls_are_checked_and_ids_outside_the_index_reported(small_index, tmp_path):
    with pytest.raises(ParameterError, match="in-memory"):
        BeatIndex.build(tmp_path / "idx", [], encoder=small_index.encoder, catalog_url="sqlite://")
    with pytest.raises(ParameterError, match="not an SQLAlchemy URL"):
        BeatIndex.build(tmp_path / "idx", [], encoder=small_index.encoder, catalog_url="no url at all")
    assert not (tmp_path / "idx").exists()
    with pytest.raises(BeatNotFoundError, match="no beat with id 0, 999999999"):
        small_index.catalog.beats(ids=np.array([0, 1, 999_999_999]))
    with pytest.raises(IndexWriteError, match="open for reading"):
        small_index.add_beats(*[None] * 2, record_path="", n_samples=0, label_source="none")


def test_opening_and_querying_stored_beats_loads_no_tensorflow(small_index):
    code = ("import sys; from simsearch import BeatIndex; from simsearch.label.query import query_beat; "
            "index = BeatIndex.open(sys.argv[1]); query_beat(index, '119', 5000, k=3); "
            "print(sorted(m for m in ('tensorflow', 'keras') if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code, str(small_index.path)], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0 and proc.stdout.strip() == "[]", proc.stderr


def test_a_file_is_replaced_whole_or_not_at_all(tmp_path):
    """:func:`simsearch.files.staged`: a failed write leaves the old file and no temporary one; a directory that
    takes no file is named in the error, not the temporary name."""
    from simsearch.files import atomic_write, staged

    path = tmp_path / "report.json"
    atomic_write(path, "old")
    with pytest.raises(RuntimeError), staged(path) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed midway")
    assert path.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["report.json"]
    atomic_write(path, "new")
    assert path.read_text() == "new" and sorted(p.name for p in tmp_path.iterdir()) == ["report.json"]
    with pytest.raises(OSError) as error, staged("/proc/version") as tmp:
        tmp.write_text("x")
    assert error.value.filename == "/proc/version" and "cannot be written there" in error.value.strerror
