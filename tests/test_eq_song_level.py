"""The song-level EQ measurement behind the model card (scripts/eq_song_level.py).

Known answers: a whole synthetic song degraded by a known 4-band peak EQ, read back by the
least-squares estimator against the song's own undegraded spectrum (the card's oracle row),
and the same with another voice's spectrum as the reference (what a fixed reference does).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
BANDS = [1, 3, 4, 6]
APPLIED_DB = [9.0, -12.0, 7.0, -10.0]


@pytest.fixture(scope="module")
def song_level():
    spec = importlib.util.spec_from_file_location("eq_song_level", REPO / "scripts" / "eq_song_level.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def response(song_level):
    return song_level._script("ablate_eq_cnn").peak_response_matrix()


def _known_eq() -> tuple[np.ndarray, np.ndarray]:
    applied = np.zeros((1, 9))
    applied[0, BANDS] = APPLIED_DB
    return applied, applied != 0


def _pink_noise(seconds: float = 6.0, seed: int = 5) -> np.ndarray:
    """Noise falling 3 dB per octave: every mel band well above the features' 80-dB floor."""
    rng = np.random.default_rng(seed)
    n = int(seconds * 44100)
    f = np.maximum(np.fft.rfftfreq(n, 1 / 44100), 20.0)
    x = np.fft.irfft(np.fft.rfft(rng.standard_normal(n)) / np.sqrt(f), n)
    return (0.3 * x / np.abs(x).max()).astype(np.float32)


def _voice(seed: int) -> np.ndarray:
    from vocalmix.training.eq_voices import synthetic_voice

    return synthetic_voice(6.0, np.random.default_rng(seed))


def test_own_reference_reads_a_known_eq_from_the_whole_song(song_level, response):
    voice = _pink_noise()
    applied, changed = _known_eq()
    spectra = song_level.degraded_song_spectra(voice, applied, changed, seed=0)
    assert len(spectra) == 1 and spectra[0].shape[0] >= 2 and spectra[0].shape[1] == 128
    song_db = song_level.song_average_db(spectra)
    own = song_level._to_db(song_level.undegraded_spectra(voice)).mean(0)
    undo = song_level.least_squares_undo(song_db, own, response, 0.0, 1.0, changed_bands=4)[0]
    assert sorted(np.nonzero(undo)[0].tolist()) == BANDS
    np.testing.assert_allclose(undo[BANDS], -np.array(APPLIED_DB), atol=1.0)
    # Without the 4-band prior (all 9 fitted) the unchanged bands still come out near 0 dB.
    full = song_level.least_squares_undo(song_db, own, response, 0.0, 1.0)[0]
    np.testing.assert_allclose(full, -applied[0], atol=1.0)


def test_another_voices_spectrum_as_reference_reads_a_large_eq_that_is_not_there(song_level, response):
    """The fixed-reference failure in miniature: the undegraded song read against another voice."""
    own = song_level._to_db(song_level.undegraded_spectra(_voice(5))).mean(0)
    other = song_level._to_db(song_level.undegraded_spectra(_voice(11))).mean(0)
    seeming = song_level.apparent_eq({"a": own}, other, response)["a"]
    assert np.abs(seeming).max() > 6.0, seeming.round(1)
    assert np.abs(song_level.apparent_eq({"a": own}, own, response)["a"]).max() < 1e-6


def test_a_band_above_the_recordings_bandwidth_stays_at_0_db(song_level, response):
    """A 16 kHz recording has nothing above 8 kHz: the 16 kHz band is not fitted to noise."""
    from vocalmix.audio import resample

    voice = resample(resample(_pink_noise()[None], 44100, 16000), 16000, 44100)[0].astype(np.float32)
    applied, changed = _known_eq()
    song_db = song_level.song_average_db(song_level.degraded_song_spectra(voice, applied, changed, seed=0))
    own = song_level._to_db(song_level.undegraded_spectra(voice)).mean(0)
    undo = song_level.least_squares_undo(song_db, own, response, 0.0, 1.0)[0]
    assert undo[8] == 0.0
    np.testing.assert_allclose(undo[BANDS], -np.array(APPLIED_DB), atol=1.0)
