import numpy as np
import pytest
import soundfile as sf

from vocalmix.audio import check_output_path, load_audio, match_length, resample, to_mono, to_stereo, write_audio
from vocalmix.errors import AudioFileError, InputError


def _sine(freq, sr, seconds=1.0, channels=1, amp=0.5):
    t = np.arange(int(sr * seconds)) / sr
    return np.tile(amp * np.sin(2 * np.pi * freq * t), (channels, 1)).astype(np.float32)


@pytest.mark.parametrize("ext, fmt", [(".wav", "WAV"), (".flac", "FLAC"), (".ogg", "OGG"), (".mp3", "MP3")])
def test_reads_common_formats(tmp_path, ext, fmt):
    if fmt not in sf.available_formats():
        pytest.skip(f"this libsndfile cannot write {fmt}")
    path = tmp_path / f"tone{ext}"
    sf.write(path, _sine(440, 44100, channels=2).T, 44100, format=fmt)
    audio = load_audio(path)
    assert audio.samples.dtype == np.float32
    assert audio.samples.shape[0] == 2
    assert abs(audio.samples.shape[1] - 44100) < 3000  # lossy codecs add priming samples
    assert np.max(np.abs(audio.samples)) == pytest.approx(0.5, abs=0.05)


def test_resampling_keeps_frequency_and_level_and_rejects_images():
    x = _sine(1000, 48000, seconds=2.0)
    y = resample(x, 48000, 44100)
    assert y.shape[-1] == 88200
    mid = y[0, 10000:-10000]
    spectrum = np.abs(np.fft.rfft(mid * np.hanning(mid.size)))
    freqs = np.fft.rfftfreq(mid.size, 1 / 44100)
    assert freqs[np.argmax(spectrum)] == pytest.approx(1000, abs=2)
    rms_db = 20 * np.log10(np.sqrt(np.mean(mid**2)) / (0.5 / np.sqrt(2)))
    assert abs(rms_db) < 0.01
    # Everything that is not the tone (images, aliasing) is far below it.
    tone = (freqs > 950) & (freqs < 1050)
    assert 10 * np.log10(spectrum[~tone].max() ** 2 / spectrum[tone].max() ** 2) < -90


def test_loads_and_resamples_other_rates(tmp_path):
    path = tmp_path / "low.wav"
    sf.write(path, _sine(300, 16000).T, 16000)
    audio = load_audio(path)
    assert audio.sample_rate == 44100 and audio.original_rate == 16000
    assert audio.samples.shape[-1] == 44100


def test_channel_handling():
    mono = _sine(100, 1000)
    assert to_stereo(mono).shape[0] == 2
    stereo = np.stack([mono[0], -mono[0]])
    assert np.allclose(to_mono(stereo), 0)
    with pytest.raises(AudioFileError, match="6 channels"):
        to_stereo(np.zeros((6, 10), np.float32), "surround.wav")


def test_length_matching_pads_with_silence():
    x = np.ones((1, 5), np.float32)
    y = match_length(x, 8)
    assert y.shape == (1, 8) and np.all(y[:, 5:] == 0) and np.all(y[:, :5] == 1)


@pytest.mark.parametrize(
    "make, problem",
    [
        (lambda p: None, "file not found"),
        (lambda p: p.write_bytes(b"this is not audio at all" * 10), "not a readable audio file"),
        (lambda p: sf.write(p, np.zeros((0, 1)), 44100), "contains no audio"),
        (lambda p: sf.write(p, np.full((100, 1), np.nan), 44100, subtype="FLOAT"), "NaN"),
    ],
)
def test_bad_files_name_the_file_and_the_problem(tmp_path, make, problem):
    path = tmp_path / "input.wav"
    make(path)
    with pytest.raises(AudioFileError) as err:
        load_audio(path)
    assert str(path) in str(err.value) and problem in str(err.value)
    assert "\n" not in str(err.value)


def test_directory_silence_and_length_limit(tmp_path):
    with pytest.raises(AudioFileError, match="directory"):
        load_audio(tmp_path)
    silent = tmp_path / "silent.wav"
    sf.write(silent, np.zeros((4410, 1)), 44100)
    assert load_audio(silent).samples.shape == (1, 4410)
    with pytest.raises(AudioFileError, match="silent"):
        load_audio(silent, allow_silent=False)
    long = tmp_path / "long.wav"
    sf.write(long, _sine(100, 8000, seconds=3).T, 8000)
    with pytest.raises(AudioFileError, match="limit"):
        load_audio(long, max_seconds=2)


def test_clipping_is_reported(tmp_path, caplog):
    x = np.clip(_sine(100, 44100, amp=2.0), -1, 1)
    path = tmp_path / "clipped.wav"
    sf.write(path, x.T, 44100, subtype="FLOAT")
    with caplog.at_level("WARNING", logger="vocalmix"):
        load_audio(path)
    assert "clipped" in caplog.text


def test_write_is_atomic_and_never_clobbers(tmp_path):
    out = tmp_path / "out.wav"
    x = _sine(440, 44100, channels=2)
    write_audio(out, x, 44100)
    back, sr = sf.read(out, dtype="float32")
    assert sr == 44100 and np.max(np.abs(back.T - x)) < 1e-6  # 24-bit
    with pytest.raises(InputError, match="already exists"):
        write_audio(out, x, 44100)
    write_audio(out, 0.5 * x, 44100, force=True)
    with pytest.raises(InputError, match="one of the inputs"):
        write_audio(out, x, 44100, force=True, protected=(out,))
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".part")]
    with pytest.raises(InputError, match="NaN"):
        write_audio(tmp_path / "nan.wav", np.full((1, 10), np.nan, np.float32), 44100)
    assert not (tmp_path / "nan.wav").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".part")]


def test_output_path_checks(tmp_path):
    with pytest.raises(InputError, match=".wav or .flac"):
        check_output_path(tmp_path / "mix.mp3")
    with pytest.raises(InputError, match="does not exist"):
        check_output_path(tmp_path / "nowhere" / "mix.wav")


def test_float_and_flac_outputs(tmp_path):
    x = _sine(440, 44100, channels=2)
    write_audio(tmp_path / "f.wav", x, 44100, subtype="float")
    assert sf.info(tmp_path / "f.wav").subtype == "FLOAT"
    write_audio(tmp_path / "f.flac", x, 44100)
    assert sf.info(tmp_path / "f.flac").subtype == "PCM_24"
    with pytest.raises(InputError, match="FLAC cannot hold float"):
        write_audio(tmp_path / "g.flac", x, 44100, subtype="float")


# --- truncated files, short vocals, DC, stereo vocals that cancel --------------------------------

from vocalmix.audio import MIN_VOCAL_SECONDS, fold_vocal, load_vocal, remove_dc  # noqa: E402


def _noise(seconds, sr=44100, channels=1, seed=0, amp=0.1):
    return (amp * np.random.default_rng(seed).standard_normal((channels, int(seconds * sr)))).astype(np.float32)


@pytest.mark.parametrize("keep, holds", [(0.5, "2.50 s"), (60 / 441044, "0.00 s")])
def test_truncated_wav_is_refused_naming_the_file(tmp_path, keep, holds):
    full = tmp_path / "full.wav"
    sf.write(full, _noise(5.0).T, 44100, subtype="PCM_16")
    data = full.read_bytes()
    cut = tmp_path / "cut.wav"
    cut.write_bytes(data[: int(len(data) * keep)])
    # libsndfile alone reads whatever is there: the cut file looks like a shorter, valid one.
    assert 0 < sf.info(cut).frames < 44100 * 5
    for load in (load_audio, load_vocal):
        with pytest.raises(AudioFileError) as err:
            load(cut)
        message = str(err.value)
        assert message.startswith(str(cut)) and "truncated" in message and "\n" not in message
        assert "promises 5.00 s" in message and f"holds {holds}" in message
    assert load_audio(full).samples.shape == (1, 5 * 44100)


def test_wav_without_a_stated_length_is_not_called_truncated(tmp_path):
    # Streaming writers leave the data size at 0xFFFFFFFF; that is a missing length, not a cut file.
    path = tmp_path / "stream.wav"
    sf.write(path, _noise(4.0).T, 44100, subtype="PCM_16")
    data = bytearray(path.read_bytes())
    at = data.index(b"data") + 4
    data[at : at + 4] = (0xFFFFFFFF).to_bytes(4, "little")
    path.write_bytes(bytes(data))
    try:
        sf.info(path)
    except RuntimeError:
        pytest.skip("this libsndfile does not read WAV files without a stated length")
    assert load_audio(path).samples.shape[-1] > 0


def test_vocal_shorter_than_the_short_term_window_is_refused(tmp_path):
    assert MIN_VOCAL_SECONDS == 3.0  # BS.1770 / EBU R128 short-term loudness window
    short = tmp_path / "short.wav"
    sf.write(short, _noise(2.9, 16000).T, 16000)
    with pytest.raises(AudioFileError) as err:
        load_vocal(short)
    assert str(short) in str(err.value) and "2.90 s" in str(err.value) and "at least 3 s" in str(err.value)
    enough = tmp_path / "enough.wav"
    sf.write(enough, _noise(3.0, 16000).T, 16000)
    assert load_vocal(enough).samples.shape == (1, 3 * 44100)
    assert load_audio(short).samples.shape[-1] > 0  # other files (a backing, analyze) may be short


def test_dc_offset_is_removed_exactly_and_reported(tmp_path, caplog):
    sine = _sine(220, 44100, seconds=4.0, amp=0.3)
    path = tmp_path / "dc.wav"
    sf.write(path, (sine + 0.4).T, 44100, subtype="FLOAT")
    with caplog.at_level("WARNING", logger="vocalmix"):
        vocal = load_vocal(path).samples
    # The sine's mean over whole periods is zero, so what remains is the sine itself.
    assert np.max(np.abs(vocal - sine)) < 1e-6
    assert str(path) in caplog.text and "DC offset of -8.0 dBFS removed" in caplog.text
    # A tiny offset is removed without a word.
    caplog.clear()
    sf.write(path, (sine + 1e-3).T, 44100, subtype="FLOAT")
    with caplog.at_level("WARNING", logger="vocalmix"):
        assert abs(float(load_vocal(path).samples.mean())) < 1e-7
    assert "DC" not in caplog.text


@pytest.mark.parametrize("rate", [44100, 16000])
def test_vocal_of_nothing_but_dc_is_refused(tmp_path, rate):
    path = tmp_path / "dc_only.wav"
    sf.write(path, np.full((rate * 4, 2), 0.6, np.float32), rate, subtype="FLOAT")
    with pytest.raises(AudioFileError) as err:
        load_vocal(path)
    assert str(path) in str(err.value) and "only a constant (DC) offset of -4.4 dBFS" in str(err.value)
    with pytest.raises(AudioFileError, match="DC"):
        remove_dc(np.full((1, 1000), -0.2, np.float32), "x.wav")


@pytest.mark.parametrize("right_gain, expected", [(-1.0, "left"), (-0.99, "left"), (-1.2, "right")])
def test_stereo_vocal_whose_channels_cancel_uses_the_louder_channel(tmp_path, caplog, right_gain, expected):
    voice = _noise(4.0)[0]
    stereo = np.stack([voice, right_gain * voice])
    path = tmp_path / "phase.wav"
    sf.write(path, stereo.T, 44100, subtype="FLOAT")
    with caplog.at_level("WARNING", logger="vocalmix"):
        vocal = load_vocal(path).samples
    assert vocal.shape == (1, voice.size)
    chosen = stereo[0 if expected == "left" else 1]
    assert np.allclose(vocal[0], chosen - chosen.mean(), atol=1e-7)  # the noise's small mean is removed
    assert str(path) in caplog.text and "cancel" in caplog.text and f"the {expected} channel" in caplog.text


def test_ordinary_stereo_vocals_are_averaged_without_a_warning(caplog):
    voice = _noise(4.0)[0]
    other = _noise(4.0, seed=1)[0]
    cases = [
        np.stack([voice, 0.8 * voice]),  # panned
        np.stack([voice, other]),  # uncorrelated channels lose 3 dB when averaged: still a fold
        np.stack([voice, np.zeros_like(voice)]),  # one channel only: also 3 dB
        np.stack([voice, -0.3 * voice + other]),
    ]  # partly opposed
    with caplog.at_level("WARNING", logger="vocalmix"):
        for stereo in cases:
            assert np.allclose(fold_vocal(stereo, "v.wav"), stereo.mean(axis=0, keepdims=True))
    assert caplog.text == ""
