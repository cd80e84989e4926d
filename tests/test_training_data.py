"""Training data: features, targets, sources/splits, batch renderer, dataset build and resume."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from vocalmix import features as F
from vocalmix.nets import cnn_targets
from vocalmix.training import build as B
from vocalmix.training import data as D
from vocalmix.training import targets as T
from vocalmix.training.datasets import Song, discover_songs, split_songs, synthetic_songs
from vocalmix.training.synthesis import BatchRenderer, synthetic_backing, synthetic_vocal

SR = 44100
SHARED_AUDIO = Path(__file__).resolve().parents[1].parent / "shared" / "audio"
needs_shared = pytest.mark.skipif(not SHARED_AUDIO.is_dir(), reason=f"{SHARED_AUDIO} is absent (real test clips)")


# -- an independent reference mel computation (NumPy, loops, no shared code) -----------------


def _ref_hz_to_mel(f):
    # Slaney: 3 mel per 200 Hz up to 1 kHz, then 27 mel per factor 6.4.
    return f * 3.0 / 200.0 if f < 1000.0 else 15.0 + 27.0 * math.log(f / 1000.0) / math.log(6.4)


def _ref_mel_to_hz(m):
    return m * 200.0 / 3.0 if m < 15.0 else 1000.0 * 6.4 ** ((m - 15.0) / 27.0)


def _ref_filterbank(sr, n_fft, n_mels):
    top = _ref_hz_to_mel(sr / 2)
    edges = [_ref_mel_to_hz(top * i / (n_mels + 1)) for i in range(n_mels + 2)]
    fb = np.zeros((n_mels, n_fft // 2 + 1))
    for m in range(n_mels):
        lo, mid, hi = edges[m], edges[m + 1], edges[m + 2]
        for k in range(n_fft // 2 + 1):
            f = k * sr / n_fft
            if lo < f <= mid:
                fb[m, k] = (f - lo) / (mid - lo)
            elif mid < f < hi:
                fb[m, k] = (hi - f) / (hi - mid)
        fb[m] *= 2.0 / (hi - lo)
    return fb


def _ref_mel_power(x, sr, n_fft, hop, fb):
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)
    frames = [x[i : i + n_fft] * window for i in range(0, len(x) - n_fft + 1, hop)]
    power = np.abs(np.fft.rfft(np.array(frames), axis=1)) ** 2
    return fb @ power.T


def test_mel_filterbank_matches_independent_reference():
    ours = F.mel_filterbank(SR, 2048, 128).numpy()
    ref = _ref_filterbank(SR, 2048, 128)
    assert ours.shape == (128, 1025)
    np.testing.assert_allclose(ours, ref, rtol=1e-4, atol=1e-7)


def test_mel_spectrogram_matches_reference_and_runs_batched():
    rng = np.random.default_rng(1)
    x = (rng.standard_normal((3, SR)) * 0.1).astype(np.float32)
    front = F.MelFrontend()
    mel, loudness = front(torch.from_numpy(x))
    ref = _ref_mel_power(x[1].astype(np.float64), SR, 2048, 1024, _ref_filterbank(SR, 2048, 128))
    assert mel.shape == (3, 128, F.frame_count(SR))
    np.testing.assert_allclose(mel[1].numpy(), ref, rtol=2e-3, atol=1e-6 * ref.max())
    # Batch items are independent: item 1 alone gives the same result.
    alone, _ = front(torch.from_numpy(x[1:2]))
    torch.testing.assert_close(alone[0], mel[1], rtol=1e-5, atol=1e-6)


def test_frame_loudness_reads_a_sine_at_its_level():
    # A 1 kHz sine of peak -20 dBFS reads -20 LUFS on two channels, so -23 LUFS as mono.
    t = np.arange(SR) / SR
    x = (10 ** (-20 / 20) * np.sin(2 * np.pi * 1000 * t)).astype(np.float32)
    _, loudness = F.MelFrontend()(torch.from_numpy(x)[None])
    assert abs(float(loudness.median()) - (-23.0)) < 0.15


def test_gate_removes_quiet_vocal_frames_and_blocks_are_normalised():
    settings = F.DEFAULT_FEATURES
    n = settings.hop * 300 + settings.n_fft
    rng = np.random.default_rng(0)
    vocal = (rng.standard_normal(n) * 0.1).astype(np.float32)
    vocal[n // 2 :] *= 1e-3  # second half is 60 dB down: below the -30 LUFS gate
    backing = (rng.standard_normal(n) * 0.1).astype(np.float32)
    blocks = F.clip_features(vocal, backing)
    frames = F.frame_count(n)
    _, loud = F.MelFrontend()(torch.from_numpy(vocal)[None])
    voiced = int((loud >= -30).sum())
    assert voiced < frames * 0.6
    assert blocks.shape == (voiced // 64, 2, 128, 64)
    peaks = blocks.amax(dim=(2, 3))
    torch.testing.assert_close(peaks, torch.ones_like(peaks))
    assert float(blocks.min()) >= 0.0
    # Random gain: each channel's maximum becomes 10^(-g/20) with g in [0, 6] dB.
    g = F.clip_features(vocal, backing, random_gain_db=6.0, generator=torch.Generator().manual_seed(0))
    peaks = g.amax(dim=(2, 3))
    assert bool(((peaks <= 1.0) & (peaks >= 10 ** (-6 / 20) - 1e-6)).all())


def test_batched_features_equal_one_by_one():
    rng = np.random.default_rng(3)
    v = synthetic_vocal(4.0, SR, rng)
    vocals = np.stack([v, v * 0.5, np.roll(v, 5000, axis=-1)])  # (3, 1, T)
    backing = synthetic_backing(4.0, SR, rng)
    backs = np.stack([backing] * 3)
    blocks, owner = F.clip_features(vocals, backs, return_owner=True)
    for i in range(3):
        one = F.clip_features(vocals[i], backs[i])
        torch.testing.assert_close(blocks[owner == i], one, rtol=1e-4, atol=1e-5)


def test_song_features_shape_and_resampling():
    rng = np.random.default_rng(4)
    v = synthetic_vocal(5.0, 16000, rng)
    b = synthetic_backing(5.0, 16000, rng)
    out = F.song_features(v, b, 16000)
    assert out.shape[1:] == D.FEATURE_SHAPE and out.shape[0] >= 1 and out.dtype == torch.float32


# -- targets with known answers ---------------------------------------------------------------


def _sine(level_dbfs, seconds, freq=1000.0, channels=2):
    t = np.arange(int(seconds * SR)) / SR
    return np.repeat((10 ** (level_dbfs / 20) * np.sin(2 * np.pi * freq * t))[None], channels, 0).astype(np.float32)


def test_relative_loudness_known_answer():
    value = T.relative_loudness_lu(_sine(-22, 5), _sine(-26, 5), SR)
    assert abs(value - 4.0) < 0.1
    assert T.outlier_reason("relative_loudness_lu", value) is None
    assert T.outlier_reason("relative_loudness_lu", T.relative_loudness_lu(_sine(-10, 5), _sine(-30, 5), SR))
    assert math.isnan(T.relative_loudness_lu(np.zeros((2, SR * 2), np.float32), _sine(-20, 2), SR))


def test_loudness_range_known_answer():
    # EBU Tech 3342 case 1: -20 dBFS then -30 dBFS, 20 s each -> 10 LU.
    x = np.concatenate([_sine(-20, 20), _sine(-30, 20)], axis=1)
    assert abs(T.vocal_loudness_range_lu(x, SR) - 10.0) < 0.5


def test_synthetic_song_hits_its_relative_loudness():
    from vocalmix.training.synthesis import synthetic_song

    song = synthetic_song(5, 6.0)
    measured = T.relative_loudness_lu(song["vocal"], song["backing"], SR)
    assert abs(measured - song["relative_loudness_lu"]) < 0.1
    assert song["vocal"].shape == song["backing"].shape == (2, 6 * SR)


# -- EQ degradations and the renderer ---------------------------------------------------------


def test_eq_degradation_targets_undo_it_exactly():
    r = BatchRenderer(device="cpu", seed=3)
    d = r.sample_eq_degradation(16)
    assert d.changed.sum(1).tolist() == [4] * 16
    assert bool((d.applied_db.abs() <= 15).all())
    assert bool((d.applied_db[~d.changed] == 0).all()) and bool((d.applied_db[d.changed] != 0).all())
    torch.testing.assert_close(d.target_db, -d.applied_db, rtol=0, atol=0)
    rng = np.random.default_rng(0)
    clips = torch.from_numpy(np.stack([synthetic_vocal(1.0, SR, rng) for _ in range(16)]))
    degraded, _ = r.eq_degrade(clips, d)
    restored = r.apply_octave_gains(degraded, d.target_db, d.bands)
    err = (restored - clips).pow(2).sum() / clips.pow(2).sum()
    assert float(err) < 1e-6  # the inverse up to float32 and the EQ's -80 dB aliasing floor
    change = (degraded - clips).pow(2).sum() / clips.pow(2).sum()
    assert float(change) > 1e-3


def test_eq_degradation_frequency_sampling_path_matches_the_recursion():
    # CPU renders without gradients run the recursion (sosfilt); with a gradient (and on
    # CUDA) the renderer takes the overlap-save frequency-sampling path: same filters.
    r = BatchRenderer(device="cpu", seed=4)
    d = r.sample_eq_degradation(4)
    rng = np.random.default_rng(1)
    clips = torch.from_numpy(np.stack([synthetic_vocal(0.5, SR, rng) for _ in range(4)]))
    with torch.no_grad():
        recursive = r.apply_octave_gains(clips, d.applied_db, d.bands)
    gains = d.applied_db.clone().requires_grad_()
    sampled = r.apply_octave_gains(clips, gains, d.bands)
    err = (sampled.detach() - recursive).pow(2).sum((1, 2)) / recursive.pow(2).sum((1, 2))
    assert float(err.max()) < 1e-6
    sampled.pow(2).sum().backward()
    assert bool(torch.isfinite(gains.grad).all()) and bool((gains.grad[d.changed] != 0).all())


def test_renderer_is_deterministic_with_a_seed():
    rng = np.random.default_rng(0)
    clips = torch.from_numpy(np.stack([synthetic_vocal(0.5, SR, rng) for _ in range(4)]))
    a = BatchRenderer(device="cpu", seed=11)
    b = BatchRenderer(device="cpu", seed=11)
    ya, da = a.eq_degrade(clips)
    yb, db = b.eq_degrade(clips)
    torch.testing.assert_close(ya, yb, rtol=0, atol=0)
    torch.testing.assert_close(da.applied_db, db.applied_db, rtol=0, atol=0)
    sa, sb = a.sample_reverb_settings(5), b.sample_reverb_settings(5)
    for k in sa:
        torch.testing.assert_close(sa[k], sb[k], rtol=0, atol=0)
    other = BatchRenderer(device="cpu", seed=12).sample_eq_degradation(4)
    assert not torch.equal(other.applied_db, da.applied_db)


def test_reverb_bank_renders_the_chain_bit_for_bit_with_one_ir_per_setting(monkeypatch):
    # A renderer with a bank of 3 reverb settings: every draw is one of the 3 (fixed by the
    # seed, whatever was drawn before), each distinct setting's IR is computed once, and
    # the chain it renders from cached IRs is vocal_chain's output bit for bit.
    from vocalmix.dsp import reverb as reverb_module
    from vocalmix.dsp.chain import vocal_chain

    calls = []
    original = reverb_module.fdn_impulse_response
    monkeypatch.setattr(reverb_module, "fdn_impulse_response", lambda *a, **k: calls.append(1) or original(*a, **k))
    rng = np.random.default_rng(5)
    clips = torch.from_numpy(np.stack([synthetic_vocal(0.5, SR, rng) for _ in range(6)]))
    r = BatchRenderer(device="cpu", seed=21, reverb_bank=3)
    seen = set()
    with torch.no_grad():
        for _ in range(3):
            params = r.sample_chain_params(6)
            seen |= set(params.reverb.reverb_time_s.tolist())
            ours, _ = r.render_chain(clips, params)
            torch.testing.assert_close(ours, vocal_chain(clips, SR, params), rtol=0, atol=0)
    assert len(seen) == 3 and len(calls) == 3
    late = BatchRenderer(device="cpu", seed=21, reverb_bank=3)
    late.sample_eq_degradation(7)  # other draws first: the bank is the same
    assert set(late.sample_reverb_settings(50)["reverb_time_s"].tolist()) == seen
    with pytest.raises(ValueError, match="reverb_bank"):
        BatchRenderer(device="cpu", reverb_bank=0)


def test_reverb_settings_are_in_range_and_render_stereo():
    from vocalmix.settings import ReverbSettings, spec_of
    from vocalmix.training.synthesis import VOCAL_REVERB_PRIOR

    r = BatchRenderer(device="cpu", seed=2)
    s = r.sample_reverb_settings(256)
    for name, values in s.items():
        spec = spec_of(ReverbSettings, name)
        _, lo, hi = VOCAL_REVERB_PRIOR[name]
        assert spec.minimum <= lo < hi <= spec.maximum, name  # the prior lies inside the plug-in's range
        assert float(values.min()) >= lo and float(values.max()) <= hi, name
        assert float(values.max() - values.min()) > 0.5 * (hi - lo), name  # and is spread over it
    assert bool((s["room_size"] == s["room_size"].round()).all())
    assert 0.6 < float((s["fade_in_s"] == 0).float().mean()) < 0.95  # mostly no fade-in
    short = {k: v[:2] for k, v in s.items()}
    short["reverb_time_s"] = torch.tensor([0.3, 0.5])
    short["fade_in_s"] = torch.zeros(2)
    wet, _ = r.reverb_examples(torch.randn(2, 1, 4000) * 0.1, short)
    assert wet.shape == (2, 2, 4000) and bool(torch.isfinite(wet).all())


# -- sources and splits -----------------------------------------------------------------------


def _write(path: Path, x: np.ndarray, sr: int = SR):
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, x.T, sr)


def test_sources_musdb_folders_csv_mir1k(tmp_path):
    rng = np.random.default_rng(0)
    stereo = lambda: (rng.standard_normal((2, 2000)) * 0.1).astype(np.float32)  # noqa: E731
    parts = {n: stereo() for n in ("vocals", "drums", "bass", "other", "mixture")}
    for split in ("train", "test"):
        for name, x in parts.items():
            _write(tmp_path / "musdb" / split / f"Song {split}" / f"{name}.wav", x)
    songs = discover_songs(tmp_path / "musdb")
    assert [s.id for s in songs] == ["train/Song train", "test/Song test"]
    vocal, backing = songs[0].load()
    np.testing.assert_allclose(backing, parts["drums"] + parts["bass"] + parts["other"], atol=1e-4)
    np.testing.assert_allclose(vocal, parts["vocals"], atol=1e-4)

    for i in range(2):
        _write(tmp_path / "folders" / f"s{i}" / "vocals.flac", stereo())
        _write(tmp_path / "folders" / f"s{i}" / "accompaniment.wav", stereo())
    assert [s.id for s in discover_songs(tmp_path / "folders")] == ["s0", "s1"]

    manifest = tmp_path / "list.csv"
    with open(manifest, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "vocal", "backing", "split"])
        w.writerow(["a", "folders/s0/vocals.flac", "folders/s0/accompaniment.wav", "test"])
        w.writerow(["b", "folders/s1/vocals.flac", "folders/s1/accompaniment.wav", ""])
    songs = discover_songs(manifest)
    assert [(s.id, s.split) for s in songs] == [("a", "test"), ("b", None)]
    assert "a" in split_songs(songs, seed=0)["test"]

    mir = np.stack([parts["drums"][0], parts["vocals"][0]])  # left backing, right vocal
    _write(tmp_path / "mir1k" / "clip_1.wav", mir, 16000)
    (song,) = discover_songs(tmp_path / "mir1k")
    vocal, backing = song.load()
    assert vocal.shape[0] == backing.shape[0] == 1 and abs(vocal.shape[1] - 2000 * SR / 16000) <= 1


def test_bad_sources_raise_input_errors(tmp_path):
    from vocalmix.errors import InputError

    with pytest.raises(InputError):
        discover_songs(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError):
        discover_songs(tmp_path / "empty")
    _write(tmp_path / "half" / "s0" / "vocals.wav", np.zeros((1, 100), np.float32))
    with pytest.raises(InputError, match="backing"):
        discover_songs(tmp_path / "half")
    bad_csv = tmp_path / "bad.csv"
    bad_csv.write_text("vocal\nx.wav\n")
    with pytest.raises(InputError, match="backing"):
        discover_songs(bad_csv)


def test_splits_are_by_song_deterministic_and_complete():
    songs = [Song(id=f"song{i:03d}", kind="stems") for i in range(50)]
    a = split_songs(songs, seed=7)
    assert a == split_songs(list(reversed(songs)), seed=7)
    ids = a["train"] + a["val"] + a["test"]
    assert sorted(ids) == [s.id for s in songs] and len(set(ids)) == 50
    assert (len(a["train"]), len(a["val"]), len(a["test"])) == (40, 5, 5)
    assert split_songs(songs, seed=8) != a
    tiny = split_songs(songs[:3], seed=0)
    assert all(len(v) == 1 for v in tiny.values())


# -- dataset build, resume, executors ---------------------------------------------------------


def _config(**kw):
    return B.BuildConfig(eq_per_song=kw.pop("eq_per_song", 3), shard_blocks=kw.pop("shard_blocks", 4), **kw)


def _shards(out: Path) -> dict:
    return {p.name: torch.load(p, weights_only=True) for p in sorted((out / "shards").glob("*.pt"))}


def _assert_same_shards(a: Path, b: Path):
    sa, sb = _shards(a), _shards(b)
    assert sa.keys() == sb.keys() and sa
    for name in sa:
        for key in ("features", "targets", "changed"):
            if key in sa[name]:
                assert torch.equal(sa[name][key], sb[name][key]), (name, key)
        assert sa[name]["songs"] == sb[name]["songs"]


@pytest.fixture(scope="module")
def synthetic_build(tmp_path_factory):
    out = tmp_path_factory.mktemp("ds") / "serial"
    songs = synthetic_songs(4, 6.0, seed=1)
    manifest = B.build_dataset(songs, out, _config(seed=1), executor="serial", progress=False)
    return out, songs, manifest


def test_build_writes_a_readable_dataset(synthetic_build):
    out, songs, manifest = synthetic_build
    assert manifest["format_version"] == D.FORMAT_VERSION
    assert manifest["vocalmix_version"] and manifest["features"]["n_mels"] == 128 and manifest["seed"] == 1
    assert sorted(sum(manifest["splits"].values(), [])) == sorted(s.id for s in songs)
    for task, names in cnn_targets.TASKS.items():
        total = 0
        for split in D.SPLITS:
            d = D.load_split(out, task, split)
            assert d.features.shape[1:] == D.FEATURE_SHAPE and d.features.dtype == torch.float32
            assert d.targets.shape == (len(d), len(names))
            assert set(d.songs) <= set(manifest["splits"][split])  # blocks never cross splits
            total += len(d)
            if task == "eq":
                assert d.changed.shape == (len(d), 9) and bool((d.changed.sum(1) == 4).all())
                assert bool(((d.targets != 0) == d.changed).all())
        assert total == sum(manifest["tasks"][task]["blocks"].values())
        assert total > 0, task
    level = D.load_split(out, "level", "train")
    for song_id, target in zip(level.songs, level.targets[:, 0]):
        assert abs(float(target) - manifest["measures"][song_id]["relative_loudness_lu"]) < 1e-4
    reverb = D.load_split(out, "reverb", "train")
    song = reverb.songs[0]
    known = manifest["measures"][song]["reverb"]
    assert known["source"] == "known"
    assert (
        abs(float(reverb.targets[0, cnn_targets.TASKS["reverb"].index("reverb_time_s")]) - known["reverb_time_s"])
        < 1e-5
    )
    info = B.dataset_info(out)
    assert info["tasks"]["eq"]["blocks"] == manifest["tasks"]["eq"]["blocks"]


def test_synthetic_song_level_targets_recovered(synthetic_build):
    from vocalmix.training.synthesis import synthetic_song

    out, songs, manifest = synthetic_build
    for song in songs:
        expected = synthetic_song(song.synthetic_seed, song.seconds)["relative_loudness_lu"]
        assert abs(manifest["measures"][song.id]["relative_loudness_lu"] - expected) < 0.1


def test_normalisation_round_trip():
    for task, names in cnn_targets.TASKS.items():
        lo = torch.tensor([cnn_targets.TARGET_RANGES[n][0] for n in names])
        hi = torch.tensor([cnn_targets.TARGET_RANGES[n][1] for n in names])
        t = lo + (hi - lo) * torch.rand(5, len(names))
        u = cnn_targets.normalise_targets(task, t)
        assert float(u.min()) >= -1e-6 and float(u.max()) <= 1 + 1e-6
        torch.testing.assert_close(cnn_targets.denormalise_targets(task, u), t, rtol=1e-4, atol=1e-3)
    assert cnn_targets.TARGET_RANGES["reverb_time_s"][2] == "log"
    from vocalmix import analysis

    assert tuple(float(c) for c in cnn_targets.OCTAVE_CENTRES_HZ) == tuple(analysis.OCTAVE_CENTRES_HZ)


def test_process_pool_gives_the_same_shards(synthetic_build, tmp_path):
    out, songs, _ = synthetic_build
    B.build_dataset(songs, tmp_path / "pool", _config(seed=1), executor="process", jobs=2, progress=False)
    _assert_same_shards(out, tmp_path / "pool")


def test_interrupted_build_resumes_without_redoing_songs(synthetic_build, tmp_path, monkeypatch):
    out, songs, _ = synthetic_build
    target = tmp_path / "resumed"
    real = B.process_song
    calls = []

    def dying(song, config):
        if len(calls) == 2:
            raise KeyboardInterrupt  # the build is killed while the third song runs
        calls.append(song.id)
        return real(song, config)

    monkeypatch.setattr(B, "process_song", dying)
    with pytest.raises(KeyboardInterrupt):
        B.build_dataset(songs, target, _config(seed=1), executor="serial", progress=False)
    assert not (target / "manifest.json").exists()
    assert len(list((target / "work").glob("*.pt"))) == 2
    # A half-written temporary file from the kill is never taken for a result.
    (target / "work" / ".junk.pt.123.part").write_bytes(b"\0garbage")
    first = list(calls)
    calls.clear()
    monkeypatch.setattr(B, "process_song", lambda s, c: (calls.append(s.id), real(s, c))[1])
    B.build_dataset(songs, target, _config(seed=1), executor="serial", progress=False)
    assert sorted(calls) == sorted(set(s.id for s in songs) - set(first))
    assert not list((target / "work").glob(".*.part"))
    _assert_same_shards(out, target)
    # Resuming with other settings is refused rather than mixing two builds.
    from vocalmix.errors import InputError

    with pytest.raises(InputError, match="other settings"):
        B.build_dataset(songs, target, _config(seed=2), executor="serial", progress=False)


def test_outliers_are_dropped_and_counted(tmp_path):
    # A vocal 20 LU above its backing is outside [-10, 6]; a steady one has LRA < 5.
    songs_dir = tmp_path / "songs"
    rng = np.random.default_rng(0)
    for name, vocal_db in (("loud", -6.0), ("ok", -20.0)):
        v = _sine(vocal_db, 6, freq=440) * (1 + 0.0 * rng.random())
        _write(songs_dir / name / "vocals.wav", v)
        _write(songs_dir / name / "accompaniment.wav", _sine(-24.0 if name == "ok" else -26.0, 6, freq=220))
    manifest = B.build_dataset(
        discover_songs(songs_dir),
        tmp_path / "out",
        _config(tasks=("level", "compression")),
        executor="serial",
        progress=False,
    )
    assert manifest["dropped"]["level"]["count"] == 1 and "loud" in manifest["dropped"]["level"]["songs"]
    assert manifest["dropped"]["compression"]["count"] == 2


@needs_shared
def test_build_from_real_clips(tmp_path):
    songs = discover_songs(SHARED_AUDIO / "songs") + discover_songs(SHARED_AUDIO / "karaoke")
    assert len(songs) == 9
    manifest = B.build_dataset(
        songs,
        tmp_path / "real",
        _config(tasks=("level", "compression", "eq"), eq_per_song=2),
        executor="process",
        jobs=2,
        progress=False,
    )
    assert not manifest["failed"]
    level = sum(manifest["tasks"]["level"]["blocks"].values())
    assert level > 0
    for song in songs[:3]:
        vocal, backing = song.load()
        expected = T.relative_loudness_lu(vocal, backing, SR)
        assert abs(manifest["measures"][song.id]["relative_loudness_lu"] - expected) < 1e-6
    # MIR-1K karaoke stems have equal energy: relative loudness near 0 LU, kept.
    assert abs(manifest["measures"]["amy_14_05"]["relative_loudness_lu"]) < 3
    eq = D.load_split(tmp_path / "real", "eq", "train")
    assert len(eq) > 0 and bool((eq.changed.sum(1) == 4).all())


def test_ray_executor_gives_the_same_shards(synthetic_build, tmp_path):
    pytest.importorskip("ray", reason="ray is not installed (pip install 'vocalmix[ray]')")
    out, songs, _ = synthetic_build
    B.build_dataset(songs, tmp_path / "ray", _config(seed=1), executor="ray", jobs=2, progress=False)
    _assert_same_shards(out, tmp_path / "ray")


def test_build_synthetic_for_other_tests(tmp_path):
    out = B.build_synthetic(tmp_path / "syn", n_songs=3, seconds=6, seed=2, eq_per_song=1)
    m = D.read_manifest(out)
    assert set(m["tasks"]) == set(cnn_targets.TASKS)
    assert len(D.load_split(out, "level", "train")) > 0


def test_render_shards_streams_and_resumes(tmp_path):
    from vocalmix.training.synthesis import render_shards

    rng = np.random.default_rng(0)
    paths = []
    for i in range(2):
        p = tmp_path / f"clips-{i}.pt"
        torch.save({"clips": torch.from_numpy(np.stack([synthetic_vocal(0.5, SR, rng) for _ in range(3)]))}, p)
        paths.append(p)
    outs = render_shards(paths, tmp_path / "out", "eq", BatchRenderer(device="cpu", seed=0), batch_size=2)
    first = torch.load(outs[0], weights_only=True)
    assert first["audio"].shape == (3, 1, SR // 2) and first["settings"]["target_db"].shape == (3, 9)
    stamp = outs[0].stat().st_mtime_ns
    render_shards(paths, tmp_path / "out", "eq", BatchRenderer(device="cpu", seed=0))
    assert outs[0].stat().st_mtime_ns == stamp  # finished shards are not redone
