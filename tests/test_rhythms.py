"""Synthetic rhythms re-sequenced from one real patient's beats (cross-validation tooling)."""

from __future__ import annotations

import numpy as np
import pytest

from simsearch.model.rhythms import (
    CONFOUNDERS,
    EPISODES,
    FLUTTER,
    FLUTTER_CONDUCTION_S,
    SCENARIOS,
    SEPARATOR,
    episode_beats,
    is_simulated,
    reference_rhythms,
    simulate_rhythm,
    simulate_rhythms,
    source_record,
)
from simsearch.signal.beats import CONTEXT_COLUMNS, P_WAVE, QRS, RR_COLUMNS, beat_context, beats_from_record
from simsearch.signal.records import load_record


@pytest.fixture(scope="module")
def beats_119(data_dir):
    """Normal and ventricular beats, no supraventricular ones."""
    return beats_from_record(load_record("119", data_dir))


@pytest.fixture(scope="module")
def beats_209(data_dir):
    """Many supraventricular beats."""
    return beats_from_record(load_record("209", data_dir))


def test_simulation_is_deterministic(beats_209):
    for scenario in SCENARIOS[:6]:
        a, b = simulate_rhythm(beats_209, scenario, seed=3), simulate_rhythm(beats_209, scenario, seed=3)
        assert np.array_equal(a.samples, b.samples) and np.array_equal(a.windows, b.windows)
        assert np.array_equal(a.aami, b.aami) and np.array_equal(a.context, b.context)
    other = simulate_rhythm(beats_209, "frequent_apc", seed=4)
    assert not np.array_equal(other.samples, simulate_rhythm(beats_209, "frequent_apc", seed=3).samples)


def test_labels_positions_and_context_are_consistent(beats_119):
    for simulated in simulate_rhythms([beats_119], seed=1):
        n = len(simulated)
        assert simulated.windows.shape[0] == simulated.symbols.size == simulated.aami.size == n
        assert np.all(np.diff(simulated.samples) > 0)
        assert simulated.context.shape == (n, len(CONTEXT_COLUMNS))
        # the context is the synthetic sequence's, recomputed
        assert np.allclose(simulated.context, beat_context(simulated.samples, simulated.windows, simulated.fs))
        assert set(simulated.aami) <= {"N", "S", "V"}
        assert np.array_equal(simulated.aami == "S", simulated.symbols == "A")
        assert is_simulated(simulated.record) and source_record(simulated.record) == "119"
        assert simulated.record == f"119{SEPARATOR}{simulated.record.split(SEPARATOR)[1]}"
        # every window is one of the patient's own beats of the class it stands for (from the
        # QRS on under fibrillation, whose P waves are replaced)
        kept = slice(P_WAVE.stop, None) if simulated.record.endswith("atrial_fibrillation") else slice(None)
        normal_shapes = {w[kept].tobytes() for w in beats_119.windows[beats_119.aami == "N"]}
        assert all(w[kept].tobytes() in normal_shapes for w in simulated.windows[simulated.aami != "V"])


def test_premature_beats_are_premature(beats_209):
    for scenario in ("frequent_apc", "apc_runs", "atrial_bigeminy", "atrial_trigeminy", "brady_apc"):
        simulated = simulate_rhythm(beats_209, scenario, seed=0)
        rr = np.diff(simulated.samples) / simulated.fs
        prev = np.concatenate([[rr[0]], rr])
        apc = simulated.aami == "S"
        first = apc & np.concatenate([[False], simulated.aami[:-1] == "N"])  # premature beat after a sinus one
        first[:2] = False  # the first beat has no interval of its own
        assert 0.2 < apc.mean() < 0.85
        assert np.all(prev[first] < 0.95 * prev[np.roll(first, -1)])  # earlier than the sinus cycle before it
        assert np.median(prev[apc]) < 0.8 * np.median(prev[~apc])
    brady = simulate_rhythm(beats_209, "brady_apc", seed=0)
    prev = np.diff(brady.samples, prepend=brady.samples[0]) / brady.fs
    # record 232's pattern: mostly premature beats at a rate that looks normal, sinus beats after long pauses
    assert (brady.aami == "S").mean() > 0.5
    assert 0.5 < np.median(prev[brady.aami == "S"]) < 0.95 and np.median(prev[brady.aami == "N"][1:]) > 1.3
    # sick sinus syndrome: the pauses after premature beats scatter, from about one second to several
    pauses = prev[1:][(brady.aami[1:] == "N") & (brady.aami[:-1] == "S")]
    assert np.std(np.log(pauses)) > 0.25 and pauses.min() >= 1.1 and pauses.max() > 3.0


def test_atrial_fibrillation_stays_normal(beats_209):
    simulated = simulate_rhythm(beats_209, "atrial_fibrillation", seed=0)
    assert set(simulated.aami) == {"N"}
    rr = np.diff(simulated.samples) / simulated.fs
    assert np.std(np.diff(rr)) / np.mean(rr) > 0.15  # irregularly irregular
    # no P waves: fibrillatory waves before each QRS, so no consistent atrial activity
    consistency = simulated.context[:, CONTEXT_COLUMNS.index("p_wave_consistency")]
    sinus = simulate_rhythm(beats_209, "frequent_apc", seed=0).context[:, CONTEXT_COLUMNS.index("p_wave_consistency")]
    assert np.median(consistency) < 0.4 and np.median(sinus) > 0.7


def test_confounders_are_normal_beats_that_come_early(beats_209):
    """Sinus arrhythmia and flutter: no premature beat, yet intervals an early-beat detector mistakes."""
    assert not set(CONFOUNDERS) & set(SCENARIOS)  # scored on request, not in the pooled synthetic figures
    breathing = simulate_rhythm(beats_209, "sinus_arrhythmia", seed=0)
    flutter = simulate_rhythm(beats_209, "atrial_flutter", seed=0)
    for simulated in (breathing, flutter):
        assert set(simulated.aami) == {"N"}
        assert np.array_equal(simulated.samples, simulate_rhythm(beats_209, simulated.record.split(SEPARATOR)[1],
                                                                 seed=0).samples)
    rr = np.diff(breathing.samples) / breathing.fs
    assert np.ptp(rr) / np.median(rr) > 0.12 and np.max(np.abs(np.diff(rr))) / np.median(rr) < 0.3  # swings, gently
    rr = np.diff(flutter.samples) / flutter.fs
    (cycle_low, cycle_high), *_ = FLUTTER
    (_, slowing_high), jitter = FLUTTER_CONDUCTION_S
    cycle = np.median(rr[rr < 1.2 * rr.min()]) / 2  # 2:1 conduction, drawn half the time
    assert cycle_low - slowing_high < cycle < cycle_high + slowing_high
    ratio = np.round(rr / cycle).astype(int)
    assert set(ratio) >= {2, 4}
    # whole flutter cycles, plus the change of the FR interval: longer after a short interval (the AV node
    # had less time to recover), so a 2:1 interval after a 4:1 one is more than two cycles long
    change = rr - ratio * cycle
    assert np.all(np.abs(change) < slowing_high + 6 * jitter)
    after_long = (ratio[1:] == 2) & (ratio[:-1] == 4)
    assert after_long.any() and np.median(change[1:][after_long]) > np.median(change[1:][ratio[1:] == ratio[:-1]])
    # the flutter waves stand alike before beats of one conduction ratio and elsewhere before another's: less
    # consistent than sinus P waves, more than fibrillation's waves
    atrial = flutter.windows[1:, :P_WAVE.stop] - flutter.windows[1:, :P_WAVE.stop].mean(axis=1, keepdims=True)
    atrial /= np.linalg.norm(atrial, axis=1, keepdims=True)
    alike = atrial @ atrial.T
    same = ratio[:, None] == ratio[None, :]
    assert np.median(alike[same]) > np.median(alike[~same]) + 0.3
    column = CONTEXT_COLUMNS.index("p_wave_consistency")
    consistency = flutter.context[:, column]
    sinus, fibrillation = (simulate_rhythm(beats_209, rhythm, seed=0).context[:, column]
                           for rhythm in ("frequent_apc", "atrial_fibrillation"))
    assert np.median(fibrillation) < np.median(consistency) < np.median(sinus) - 0.1
    normal = beats_209.windows[beats_209.aami == "N"]
    untouched = slice(P_WAVE.stop, QRS.stop)  # from the end of the P wave to the end of the QRS
    qrs_shapes, atrial_shapes = ({w[part].tobytes() for w in normal} for part in (untouched, slice(None, P_WAVE.stop)))
    assert all(w[untouched].tobytes() in qrs_shapes for w in flutter.windows)  # the patient's own QRS complexes
    assert not any(w[:P_WAVE.stop].tobytes() in atrial_shapes for w in flutter.windows)  # under flutter waves


def test_a_paroxysm_is_sinus_rhythm_with_premature_beats_around_an_episode(beats_209, data_dir):
    """DS2's 202 and 222 as DS1 lacks them: premature atrial beats in sinus rhythm, and in the middle half an
    episode of fibrillation or flutter with none; both leads re-sequenced alike."""
    from simsearch.model.datasets import in_other_lead

    other_lead, = in_other_lead(["209"], [beats_209], data_dir)
    for scenario, code in EPISODES.items():
        simulated = simulate_rhythm(beats_209, scenario, n_beats=200, seed=0)
        assert len(simulated) == 400 and episode_beats(scenario, 400) == slice(100, 300)
        rhythms = reference_rhythms(simulated)
        assert list(rhythms[:100]) == ["N"] * 100 and set(rhythms[100:300]) == {code} and set(rhythms[300:]) == {"N"}
        episode = rhythms == code
        assert set(simulated.aami[episode]) == {"N"}
        share = np.mean(simulated.aami[~episode] == "S")
        assert 0.02 < share < 0.3  # scattered premature beats, in both stretches of sinus rhythm
        assert (simulated.aami[:100] == "S").any() and (simulated.aami[300:] == "S").any()
        consistency = simulated.context[:, CONTEXT_COLUMNS.index("p_wave_consistency")]
        if code == "AFIB":  # no P waves in the episode
            assert np.median(consistency[episode]) < 0.4 < 0.7 < np.median(consistency[~episode])
        rr = np.diff(simulated.samples) / simulated.fs
        assert np.std(rr[120:280]) > np.std(rr[:80]) if code == "AFIB" else np.median(rr[120:280]) < 0.8
        again = simulate_rhythm(other_lead, scenario, n_beats=200, seed=0)  # the other lead: same beats, same times
        assert np.array_equal(again.samples, simulated.samples) and np.array_equal(again.aami, simulated.aami)
        assert not np.array_equal(again.windows, simulated.windows)
    assert set(reference_rhythms(simulate_rhythm(beats_209, "brady_apc", seed=0))) == {"SBR"}


def test_ventricular_rhythms_need_ventricular_beats(beats_119, beats_209):
    couplets = simulate_rhythm(beats_119, "ventricular_couplets", seed=0)
    assert (couplets.aami == "V").any()
    v = np.flatnonzero(couplets.aami == "V")
    assert np.any(np.diff(v) == 1)  # pairs
    if (beats_209.aami == "V").sum() < 5:
        assert simulate_rhythm(beats_209, "ventricular_bigeminy") is None
    with pytest.raises(ValueError):
        simulate_rhythm(beats_119, "torsades")


def test_sinus_reference_survives_mostly_premature_beats(beats_209):
    """Record 232's pattern: the median interval is a premature one; the local mean and the sinus column are not."""
    brady = simulate_rhythm(beats_209, "brady_apc", seed=0)
    prev, local, sinus = (brady.context[:, RR_COLUMNS.index(c)] for c in ("rr_prev", "rr_local", "rr_sinus"))
    apc = brady.aami == "S"
    assert np.median(prev[apc] / local[apc]) < 0.7  # against the local mean they are premature
    assert np.median(prev[apc] / sinus[apc]) < 0.6  # against the sinus cycle they are premature
    # sick sinus pauses scatter up to 6 s and pull the 90th percentile up: the sinus beats stay well apart
    assert np.median(prev[~apc][1:] / sinus[~apc][1:]) > 1.5 * np.median(prev[apc] / sinus[apc])
