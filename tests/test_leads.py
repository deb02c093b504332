"""An index of both leads: each beat in its first lead and its record's other lead side by side.

Queries with two leads use both; a query with one lead (a raw signal, a one-lead record) is
compared by its lead alone, and must get exactly the answer of a one-lead index of the same
beats; a record with one lead cannot be stored in such an index.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import wfdb
from conftest import INDEX_RECORDS
from helpers import wait_ready, write_at_rate

from simsearch import BeatIndex
from simsearch.cli import main
from simsearch.errors import LeadNotFoundError, ParameterError
from simsearch.label.annotate import add_to_index, annotate_record
from simsearch.label.query import query_beat, query_signal
from simsearch.model.encoder import FIXED_INPUT_WEIGHTS, GRAPH_PREMATURITY, Encoder, build_encoder
from simsearch.model.leads import (
    SECOND_LEAD_WEIGHT,
    choose_leads,
    first_lead,
    graph_vectors,
    lead_weight,
    one_lead_query,
    side_by_side,
)
from simsearch.signal.beats import beats_from_record
from simsearch.signal.records import load_record, other_lead


@pytest.fixture(scope="module")
def both_index(small_index, data_dir, tmp_path_factory):
    """The conftest index's records and encoder, both leads of each beat."""
    index = BeatIndex.build(tmp_path_factory.mktemp("both") / "idx", INDEX_RECORDS, data_dir,
                            encoder=small_index.encoder, leads="both")
    yield index
    index.close()


def test_a_one_lead_query_scores_exactly_the_first_lead():
    rng = np.random.default_rng(0)

    def unit(n):
        x = rng.normal(size=(n, 32))
        return x / np.linalg.norm(x, axis=1, keepdims=True)

    first, second, query = unit(50), unit(50), unit(3)
    stored = side_by_side(first, second)
    np.testing.assert_allclose(np.linalg.norm(stored, axis=1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(one_lead_query(query) @ stored.T, query @ first.T, atol=1e-5)
    assert lead_weight("one") == 0 and lead_weight("both") == SECOND_LEAD_WEIGHT
    with pytest.raises(ParameterError, match="leads must be one of one, both"):
        lead_weight("three")


def test_a_record_graph_weighs_prematurity_as_the_encoders_before(data_dir):
    """The index's vectors weigh prematurity 3 times, a record's own graph 2 times: the graph of the packaged
    weights is the first lead of the same encoder built with the earlier weights; an encoder that weighs it
    twice or less keeps its first lead."""
    assert FIXED_INPUT_WEIGHTS[0] > GRAPH_PREMATURITY * FIXED_INPUT_WEIGHTS[1]
    earlier = (GRAPH_PREMATURITY * FIXED_INPUT_WEIGHTS[1], *FIXED_INPUT_WEIGHTS[1:])
    now, before = (Encoder(build_encoder(seed=3, input_weights=w)) for w in (FIXED_INPUT_WEIGHTS, earlier))
    before.model.set_weights(now.model.get_weights())  # one trained encoder, two fixed parts
    beats = beats_from_record(load_record("119", data_dir, span_s=(0, 60)))
    vectors_now, vectors_before = (e.embed(beats.windows, beats.context) for e in (now, before))
    both = side_by_side(vectors_now, vectors_now)
    assert not np.allclose(vectors_now, vectors_before, atol=1e-3)
    np.testing.assert_allclose(graph_vectors(both, now), first_lead(side_by_side(vectors_before, vectors_before),
                                                                       before.dim), atol=1e-5)
    np.testing.assert_array_equal(graph_vectors(both, before), first_lead(both, before.dim))


def test_auto_takes_both_leads_only_where_every_record_has_two(data_dir, tmp_path):
    single = write_at_rate("100", data_dir, 360, tmp_path, seconds=60, new_name="single")
    assert choose_leads("auto", ["100", "119"], data_dir) == "both"
    assert choose_leads("auto", ["100", str(single)], data_dir) == "one"
    assert choose_leads("one", ["100", "119"], data_dir) == "one"
    with pytest.raises(LeadNotFoundError, match="single has one lead: an index of both leads needs two"):
        choose_leads("both", ["100", str(single)], data_dir)
    with pytest.raises(ParameterError, match="leads must be one of one, both, auto, not 'two'"):
        choose_leads("two", ["100"], data_dir)


def test_the_second_lead_is_a_chest_lead_before_any_other(data_dir, tmp_path):
    assert other_lead("101", data_dir) == "V1" and other_lead("114", data_dir) == "V5"  # 114: V5 then MLII
    assert other_lead("101", data_dir, first="V1") == "MLII"
    signals = np.random.default_rng(0).normal(size=(3600, 4))
    wfdb.wrsamp("twelve", fs=360, units=["mV"] * 4, sig_name=["I", "II", "III", "V1"], p_signal=signals,
                fmt=["16"] * 4, write_dir=str(tmp_path))
    assert other_lead(tmp_path / "twelve") == "V1"  # II is read first, and paired with V1, not with lead I
    write_at_rate("100", data_dir, 360, tmp_path, seconds=60, new_name="single")
    assert other_lead(tmp_path / "single") is None


def test_an_index_of_both_leads(both_index, small_index, data_dir):
    assert both_index.leads == "both" and both_index.second_lead_weight == SECOND_LEAD_WEIGHT
    assert both_index.vectors.d == 2 * small_index.vectors.d and len(both_index) == len(small_index)
    reopened = BeatIndex.open(both_index.path)
    assert reopened.info()["leads"] == "both"
    result = query_beat(both_index, "208", 61785, 10, exclude_record=True)  # a VEB: its neighbors are VEBs
    # (but one: timing weighs in the embedding, and in this four-record index a premature SVEB of 209 is 8th)
    assert result.vote.label == "V" and sum(n.aami == "V" for n in result.neighbors) >= 9
    assert result.embedding.shape[-1] == 2 * small_index.vectors.d
    # a raw signal has one lead: the answer of the one-lead index, neighbor for neighbor, distance for distance
    record = load_record("119", data_dir)
    ours = query_signal(both_index, record.signal[:3600], record.fs, k=10, exclude_records=["119"])
    theirs = query_signal(small_index, record.signal[:3600], record.fs, k=10, exclude_records=["119"])
    assert [(n.record, n.sample) for n in ours.neighbors] == [(n.record, n.sample) for n in theirs.neighbors]
    np.testing.assert_allclose([n.distance for n in ours.neighbors], [n.distance for n in theirs.neighbors],
                               atol=1e-4)
    assert ours.vote.scores == pytest.approx(theirs.vote.scores, abs=1e-4)


def test_a_record_with_one_lead_is_voted_on_by_its_lead_and_never_stored(both_index, data_dir, tmp_path):
    single = write_at_rate("233", data_dir, 360, tmp_path, seconds=120, new_name="single")
    annotation = annotate_record(both_index, single, beats="reference")
    assert annotation.embeddings.shape[1] == both_index.encoder.dim  # its one lead, compared by that lead
    assert {"N", "V"} <= set(annotation.labels)
    generation = both_index.generation
    with (pytest.raises(LeadNotFoundError, match="single was embedded in one lead: this index holds both leads"),
          BeatIndex.updating(both_index.path) as writer):
        add_to_index(writer, annotation)
    with (pytest.raises(LeadNotFoundError, match="single has one lead: this index holds both leads"),
          BeatIndex.updating(both_index.path) as writer):
        writer.add_records([str(single)])
    assert BeatIndex.open(both_index.path).generation == generation  # nothing was published

    two = annotate_record(both_index, "233", data_dir=data_dir, beats="reference")
    assert two.embeddings.shape[1] == 2 * both_index.encoder.dim


def test_command_line(data_dir, tmp_path, capsys):
    write_at_rate("119", data_dir, 360, tmp_path, seconds=60, new_name="single")
    with pytest.raises(SystemExit) as exit_info:
        main(["build", tmp_path / "idx", "--data-dir", tmp_path, "--records", "single", "--leads", "both"])
    assert exit_info.value.code == 2 and not (tmp_path / "idx").exists()
    err = capsys.readouterr().err.strip()
    assert err == "error: single has one lead: an index of both leads needs two in every record", err
    main(["build", tmp_path / "one", "--data-dir", tmp_path, "--records", "single", "--json"])
    assert json.loads(capsys.readouterr().out)["leads"] == "one"  # the default, auto: one lead where a record has one
    main(["build", tmp_path / "idx", "--data-dir", data_dir, "--records", "119", "--json"])
    assert json.loads(capsys.readouterr().out)["leads"] == "both"  # ... and both where every record has two
    main(["info", tmp_path / "idx"])
    assert "both, the second weighted 1.5" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit_info:
        main(["add", tmp_path / "idx", "--data-dir", tmp_path, "--records", "single"])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.strip() == ("error: single has one lead: "
                                               "an index of both leads needs two in every record")


def test_the_server_on_an_index_of_both_leads(both_index, data_dir, tmp_path):
    """Queries in both leads, a one-lead record reviewed by its lead, and refused when added, in 4xx JSON."""
    pytest.importorskip("fastapi")
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from fastapi.testclient import TestClient
    from simsearch.server.app import create_app
    from simsearch.server.state import ServerState

    records = tmp_path / "records"
    records.mkdir()
    write_at_rate("233", data_dir, 360, records, seconds=60, new_name="single")
    served = ServerState(both_index.path, records, tmp_path / "ws", encoder=both_index.encoder)
    try:
        with TestClient(create_app(served)) as client:
            assert client.get("/api/info").json()["leads"] == "both"
            stored = client.get("/api/query", params={"record": "208", "sample": 61785, "k": 5,
                                                      "exclude_record": True}).json()
            assert stored["vote"]["label"] == "V"
            signal = load_record("119", data_dir).signal[:3600]
            raw = client.post("/api/query/signal", json={"signal": signal.tolist(), "fs": 360, "k": 5})
            assert raw.status_code == 200 and len(raw.json()["neighbors"]) == 5
            opened = client.post("/api/workspaces", json={"record": "single", "by": "ana"})
            assert opened.status_code == 202, opened.text
            wid = opened.json()["id"]
            wait_ready(client, wid)
            refused = client.post(f"/api/workspaces/{wid}/add-to-index", json={"by": "ana"})
            assert 400 <= refused.status_code < 500 and list(refused.json()) == ["error"]
            assert "single was embedded in one lead" in refused.json()["error"]
    finally:
        served.close()


def test_a_query_on_a_long_recording_reads_its_minutes_around_the_beat(both_index, data_dir, monkeypatch):
    from simsearch.label import query

    sample = int(load_record("201", data_dir).ann_samples[1200])  # about minute 15; 201 is not in the index
    whole = query.query_beat(both_index, "201", sample, k=10, data_dir=data_dir)
    monkeypatch.setattr(query, "WHOLE_RECORD_S", 600.0)  # as if its 30 minutes were a day: 10 minutes read
    monkeypatch.setattr(query, "QUERY_SPAN_S", 300.0)
    part = query.query_beat(both_index, "201", sample, k=10, data_dir=data_dir)
    assert part.query == whole.query  # the same beat, named by its sample and time in the whole recording
    assert part.embedding.shape == whole.embedding.shape == (2 * both_index.encoder.dim,)  # both leads, same seconds
    assert {n.id for n in part.neighbors} == {n.id for n in whole.neighbors}
    assert part.vote.label == whole.vote.label
    np.testing.assert_allclose(part.embedding, whole.embedding, atol=0.05)
