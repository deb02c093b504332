"""The catalog in a real PostgreSQL server, beside SQLite: build, add, query, annotate, crashes.

A private server is started from Debian's binaries (``tests/postgres_server.py``: a
data directory in /tmp, a unix socket, no TCP port, an unprivileged user); each test
gets a database of its own. The same tests run on an SQLite catalog URL, so both
backends are held to the same answers. Writers killed at every checkpoint of an add
leave the old pair (vectors + catalog) or the new one, as with SQLite.

No PostgreSQL here: in CI (``$CI`` set, where ``.ci/run`` installs it) the tests fail;
elsewhere they are skipped with the reason.
"""

from __future__ import annotations

import os
import uuid

import numpy as np
import postgres_server
import pytest
from helpers import write_at_rate
from test_storage import Zygote, expected_states, killed, state, stored_job
from typer.testing import CliRunner

from simsearch import BeatIndex
from simsearch.cli import app
from simsearch.label.annotate import add_to_index, annotate_record
from simsearch.label.query import query_beat
from simsearch.signal.beats import Beats
from simsearch.store import layout
from simsearch.store.catalog import Catalog

BACKENDS = ["sqlite", "postgresql"]


@pytest.fixture(scope="module")
def server():
    why = postgres_server.missing()
    if why:
        if os.environ.get("CI"):
            pytest.fail(f"CI must test PostgreSQL: {why}")
        pytest.skip(why)
    started = postgres_server.PostgresServer().start()
    yield started
    started.stop()


@pytest.fixture(params=BACKENDS)
def catalog_url(request, tmp_path):
    """A new, empty catalog database: an SQLite file, or a database on the private server."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'catalog.db'}"
    return request.getfixturevalue("server").create_database(f"t{uuid.uuid4().hex[:12]}")


def cli(*args) -> str:
    result = CliRunner().invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, f"{args}\n{result.output}\n{result.exception!r}"
    return result.output


# ------------------------------------------------------------------ the whole path, on both backends
def test_build_add_query_annotate(catalog_url, small_index, data_dir, tmp_path):
    path = tmp_path / "idx"
    cli("build", path, "--data-dir", data_dir, "--records", "119,208", "--catalog-url", catalog_url, "--json")
    index = BeatIndex.open(path)
    assert index.manifest["catalog_url"] == catalog_url
    assert not (index.directory / "catalog.sqlite").exists()
    counts = index.catalog.counts()
    assert counts["records"] == 2 and counts["beats"] == len(index) and counts["by_class"]["V"] > 1000
    v_sample = int(index.catalog.beats(record="208")["sample"][np.flatnonzero(
        index.catalog.beats(record="208")["aami"] == "V")[3]])
    ours = query_beat(index, "208", v_sample, k=10, exclude_record=True)
    assert {n.record for n in ours.neighbors} == {"119"} and ours.vote.label == "V"
    filtered = query_beat(index, "119", 5000, k=5, classes=["V"])
    assert len(filtered.neighbors) == 5 and {n.aami for n in filtered.neighbors} == {"V"}
    index.close()
    # add a record, then annotate a recording nobody labeled and store it with its provenance
    cli("add", path, "--data-dir", data_dir, "--records", "209", "--json")
    holter = write_at_rate("233", data_dir, 250, tmp_path, seconds=60, new_name="rec1", both_leads=True)
    holter.with_suffix(".atr").unlink()
    index = BeatIndex.open(path)
    assert index.generation == 2 and [r["name"] for r in index.catalog.records()] == ["119", "208", "209"]
    annotation = annotate_record(index, holter, expert_labels=None)
    first = int(annotation.samples[0])
    annotation = annotate_record(index, holter, expert_labels={first: "V"})
    index.close()
    with BeatIndex.updating(path) as writer:
        add_to_index(writer, annotation)
    index = BeatIndex.open(path)
    try:
        rows = index.catalog.beats(record="rec1")
        assert index.catalog.record("rec1")["fs"] == 250 and len(rows["id"]) == len(annotation.samples)
        assert (rows["label_source"] == "expert").sum() == 1
        assert set(rows["label_source"]) <= {"expert", "propagated"}
        assert index.catalog.generations == (2, 3)  # the generation before is still readable, older rows collected
        out = cli("query", path, "--record", "rec1", "--sample", first, "-k", "5", "--exclude-record", "--json")
        assert '"record": "rec1"' in out
    finally:
        index.close()


def test_both_backends_give_the_same_ids_and_answers(server, small_index, data_dir, tmp_path):
    built = {}
    for backend, url in (("sqlite", f"sqlite:///{tmp_path / 'c.db'}"), ("postgresql", server.create_database("same"))):
        index = BeatIndex.build(tmp_path / backend, ["119"], data_dir, encoder=small_index.encoder, catalog_url=url)
        beats = index.catalog.beats()
        result = query_beat(index, "119", 5000, k=10)
        built[backend] = (beats, [(n.id, n.sample, round(n.distance, 5)) for n in result.neighbors])
        index.close()
    (a, qa), (b, qb) = built["sqlite"], built["postgresql"]
    assert qa == qb
    for field in ("id", "sample", "symbol", "aami", "label_source"):
        assert list(a[field]) == list(b[field]), field
    np.testing.assert_allclose(a["rr_prev"].astype(float), b["rr_prev"].astype(float))


# ------------------------------------------------------------------ the catalog alone
def synthetic(name: str, n: int, rng) -> Beats:
    samples = np.sort(rng.choice(np.arange(100, 360 * n), size=n, replace=False)).astype(np.int64)
    aami = np.where(rng.random(n) < 0.2, "V", "N").astype("<U1")
    return Beats(name, "MLII", 360.0, samples, np.zeros((n, 256), np.float32),
                 rng.random((n, 9)).astype(np.float32) + 0.5, aami.copy(), aami)


def test_bulk_insert_and_nearest_beat(catalog_url):
    rng = np.random.default_rng(3)
    catalog = Catalog.create(catalog_url, 1, index_uid="u", owner="o")
    try:
        records = [synthetic(f"r{i}", 3000, rng) for i in range(5)]
        all_ids = []
        for beats in records:
            ids, removed = catalog.replace_record(beats, path=beats.record, n_samples=360 * 3000 + 360,
                                                  label_source="reference", confidence=np.full(len(beats), 0.5))
            assert removed.size == 0
            all_ids.append(ids)
        assert np.array_equal(np.concatenate(all_ids), np.arange(1, 15001))
        assert np.array_equal(catalog.ids(), np.arange(1, 15001))
        rows = catalog.beats(record="r2")
        assert list(rows["sample"]) == list(records[2].samples) and set(rows["confidence"]) == {0.5}
        beats = records[1]
        probes = np.concatenate([beats.samples[:3], beats.samples[:3] + 1, [0, 10**9],
                                 (beats.samples[10:13] + beats.samples[11:14]) // 2, rng.integers(0, 360 * 3000, 40)])
        for sample in probes:
            got = catalog.nearest_beat("r1", int(sample))
            distance = np.abs(beats.samples - int(sample))
            expected = all_ids[1][int(np.flatnonzero(distance == distance.min())[0])]  # the earlier beat on a tie
            assert got == expected, sample
        assert catalog.nearest_beat("nobody", 5) is None
        # replacing a record: new ids, the old rows seen no more, nearest_beat on the new version
        ids, removed = catalog.replace_record(records[1], path="r1", n_samples=10**6, label_source="expert")
        assert np.array_equal(removed, all_ids[1]) and ids.min() == 15001
        assert catalog.nearest_beat("r1", int(records[1].samples[5])) == ids[5]
    finally:
        catalog.close()


# ------------------------------------------------------------------ crashes, PostgreSQL
@pytest.fixture(scope="module")
def pg_jobs(small_index, data_dir) -> list:
    return [stored_job(small_index, data_dir, "208", "w1"), stored_job(small_index, data_dir, "119", "119")]


@pytest.fixture(scope="module")
def pg_payload(pg_jobs, tmp_path_factory):
    import pickle

    path = tmp_path_factory.mktemp("pgpayload") / "jobs.pickle"
    path.write_bytes(pickle.dumps(pg_jobs))
    return path


@pytest.fixture(scope="module")
def pg_zygote(tmp_path_factory):
    started = Zygote(tmp_path_factory.mktemp("pgzygote") / "stderr.txt")
    yield started
    started.close()


def pg_index(server, small_index, data_dir, path):
    """An index of 119 (its stored vectors: no TensorFlow) whose catalog is a new PostgreSQL database."""
    url = server.create_database(f"k{uuid.uuid4().hex[:12]}")
    BeatIndex.build(path, [], encoder=small_index.encoder, catalog_url=url).close()
    job = stored_job(small_index, data_dir, "119", "119")
    with BeatIndex.updating(path) as writer:
        writer.add_beats(job[0], job[1], record_path="119", n_samples=650000, label_source="reference")
    return BeatIndex.open(path)


@pytest.mark.parametrize("point", layout.FAULT_POINTS)
def test_a_writer_killed_at_each_checkpoint_leaves_the_old_or_the_new_pair(point, server, small_index, data_dir,
                                                                           pg_jobs, pg_payload, pg_zygote, tmp_path):
    path = tmp_path / "idx"
    base = pg_index(server, small_index, data_dir, path)
    states = expected_states(base, pg_jobs)
    assert state(path) == states[0]
    assert killed(pg_zygote.wait(pg_zygote.start(path, pg_payload, rounds=2, fault=point))), pg_zygote.errors()
    after = {"after-pointer": 1, "cleanup": 2}.get(point, 0)
    assert state(path) == states[after]  # opening compares the FAISS ids with the PostgreSQL catalog's
    seen = set(BeatIndex.open(path).catalog.ids())
    # the next writer drops what the dead one wrote to PostgreSQL and lands
    with BeatIndex.updating(path) as writer:
        beats, vectors = pg_jobs[0 if after == 0 else 1]
        new = writer.add_beats(beats, vectors, record_path=beats.record, n_samples=650000, label_source="reference")
    assert not set(new) & seen
    assert state(path) == states[1 if after == 0 else 2]
    base.close()
