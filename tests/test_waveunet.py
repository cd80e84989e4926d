"""Wave-U-Net mixer: lengths, receptive field, exact windowed inference, training, CLI, shipped model."""

import csv
import json

import numpy as np
import pytest
import soundfile as sf
import torch

from vocalmix.cli import main
from vocalmix.errors import InputError
from vocalmix.nets.checkpoints import load_waveunet_checkpoint
from vocalmix.nets.waveunet import (
    WaveUNet,
    WaveUNetConfig,
    forward_lengths,
    lengths_for_output,
    mix_one_shot,
    mix_windowed,
)
from vocalmix.training.waveunet_data import SongCache, discover_mix_songs, prepare_songs
from vocalmix.training.waveunet_train import init_as_sum, train_step

SR = 44100
CONFIGS = [
    WaveUNetConfig(layers=1, filters_per_layer=2),
    WaveUNetConfig(layers=3, filters_per_layer=3),
    WaveUNetConfig(layers=4, filters_per_layer=2, down_kernel=7, up_kernel=3),
    WaveUNetConfig(layers=6, filters_per_layer=2),
]


def _context_by_hand(c: WaveUNetConfig) -> int:
    """Per side: each down conv at level i trims (k-1)/2 samples at rate 2^-i, the bottleneck at 2^-L,
    each up conv (k-1)/2 at 2^-i; upsampling and decimation trim nothing."""
    L, d, u = c.layers, (c.down_kernel - 1) // 2, (c.up_kernel - 1) // 2
    return d * (2**L - 1) + d * 2**L + u * (2**L - 1)


def test_lengths_match_wave_u_net_m4():
    # Stoller et al.'s M4 model (12 levels, filters 15/5): 147443 input samples give 16389 outputs.
    assert lengths_for_output(WaveUNetConfig(layers=12), 16389) == (147443, 16389)
    assert lengths_for_output(WaveUNetConfig(layers=12), 16000) == (147443, 16389)
    # The research's 10-level default.
    model = WaveUNet(WaveUNetConfig())
    assert model.context == _context_by_hand(model.config) == 16375


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: f"L{c.layers}k{c.down_kernel}-{c.up_kernel}")
def test_shapes_and_valid_lengths(config):
    model = WaveUNet(config)
    period = 2**config.layers
    for wanted in (1, 37, 500):
        n_in, n_out = lengths_for_output(config, wanted)
        assert wanted <= n_out < wanted + period
        assert n_in - n_out == 2 * model.context == 2 * _context_by_hand(config)
        assert model(torch.zeros(2, 3, n_in)).shape == (2, 2, n_out)
        # Valid lengths step by 2^L, and lengths in between are refused, not silently misaligned.
        assert forward_lengths(config, n_in + period) == n_out + period
        assert all(forward_lengths(config, n_in + s) is None for s in range(1, period))
    with pytest.raises(ValueError, match="not a valid length"):
        model(torch.zeros(1, 3, lengths_for_output(config, 40)[0] + 1))


@pytest.mark.parametrize("config", CONFIGS[:3], ids=lambda c: f"L{c.layers}")
def test_receptive_field_and_shift_equivariance(config):
    torch.manual_seed(0)
    model = WaveUNet(config).double()
    ctx, period = model.context, 2**config.layers
    n_in, n_out = lengths_for_output(config, 2 * ctx + 4 * period)
    x = torch.randn(1, 3, n_in + period, dtype=torch.float64)
    y = model(x[..., :n_in])
    # Shifting the input by 2^L samples shifts the output by exactly as much.
    shifted = model(x[..., period:])
    torch.testing.assert_close(shifted[..., :-period], y[..., period:], rtol=0, atol=1e-12)
    # A change of input sample ctx + t reaches only outputs near t: within ctx, plus at most 2^L
    # more on one side through the interpolation, and the outputs at distance ctx are reached.
    reach = []
    for t in range(ctx + period, ctx + 2 * period):
        x2 = x[..., :n_in].clone()
        x2[0, :, ctx + t] += 1.0
        changed = torch.nonzero((model(x2) - y).abs().sum(dim=1)[0] > 0).flatten()
        reach += [int(changed.min()) - t, int(changed.max()) - t]
    assert min(reach) <= -ctx and max(reach) >= ctx
    assert min(reach) >= -ctx - period and max(reach) <= ctx + period


def test_windowed_render_equals_one_shot_render():
    torch.manual_seed(1)
    model = WaveUNet(WaveUNetConfig(layers=4, filters_per_layer=3)).eval()
    rng = np.random.default_rng(0)
    n = 9001  # not a multiple of anything the network uses
    vocal = rng.standard_normal((1, n)).astype(np.float32) * 0.3
    backing = rng.standard_normal((2, n)).astype(np.float32) * 0.3
    one_shot = mix_one_shot(model, vocal, backing)
    for window in (200, 777, 4096):
        windowed = mix_windowed(model, vocal, backing, window_output=window, batch_windows=3)
        assert windowed.shape == (2, n)
        np.testing.assert_allclose(windowed, one_shot, rtol=0, atol=2e-6)
    # The same windows cut one sample off the 2^L grid give a different mix: the phase matters.
    ctx, (n_in, _) = model.context, lengths_for_output(model.config, 400)
    padded = torch.nn.functional.pad(torch.from_numpy(np.concatenate([vocal, backing])), (ctx, n_in))
    with torch.no_grad():
        off_grid = model(padded[None, :, 1 + 2**4 : 1 + 2**4 + n_in])[0, :, :100].numpy()
    assert np.abs(off_grid - one_shot[:, 1 + 16 : 117]).max() > 1e-3


def test_sum_init_outputs_vocal_plus_backing():
    model = WaveUNet(WaveUNetConfig(layers=2, filters_per_layer=2))
    init_as_sum(model)
    rng = np.random.default_rng(2)
    vocal = rng.standard_normal((1, 3000)).astype(np.float32)
    backing = rng.standard_normal((2, 3000)).astype(np.float32)
    np.testing.assert_allclose(mix_one_shot(model.eval(), vocal, backing), vocal + backing, atol=1e-6)


def test_one_training_step_lowers_the_loss():
    torch.manual_seed(0)
    model = WaveUNet(WaveUNetConfig(layers=3, filters_per_layer=3))
    n_in, n_out = lengths_for_output(model.config, 512)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(16, 3, n_in, generator=g) * 0.3
    # Target: a real mix of the inputs (vocal -6 dB to both sides plus the backing).
    ctx = model.context
    y = 0.5 * x[:, :1, ctx : ctx + n_out] + x[:, 1:, ctx : ctx + n_out]
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4, betas=(0.9, 0.999))
    before = train_step(model, optimizer, x, y)
    with torch.no_grad():
        after = float(torch.mean((model(x) - y) ** 2))
    assert after < before


def _write_song_folders(root, n_songs=4, seconds=0.6, with_mix=True):
    rng = np.random.default_rng(5)
    n = int(seconds * SR)
    for i in range(n_songs):
        d = root / f"song{i}"
        d.mkdir(parents=True)
        vocal = (0.2 * rng.standard_normal(n)).astype(np.float32)
        backing = (0.2 * rng.standard_normal((n, 2))).astype(np.float32)
        sf.write(d / "vocals.wav", vocal, SR, subtype="FLOAT")
        sf.write(d / "accompaniment.wav", backing, SR, subtype="FLOAT")
        if with_mix:
            sf.write(d / "mix.wav", 0.5 * vocal[:, None] + backing, SR, subtype="FLOAT")
    return root


def test_reference_mixes_are_found_and_missing_ones_need_a_rendered_target(tmp_path):
    src = _write_song_folders(tmp_path / "songs", n_songs=2, seconds=0.2)
    items = discover_mix_songs(src)
    assert [i.target for i in items] == ["reference", "reference"]
    assert all(i.reference.endswith("mix.wav") for i in items)
    (src / "song1" / "mix.wav").unlink()
    with pytest.raises(InputError, match="song1.*no reference mix.*--target rules"):
        discover_mix_songs(src)
    assert [i.target for i in discover_mix_songs(src, target="auto")] == ["reference", "rules"]
    # A CSV names its mix in a 'mix' column.
    table = tmp_path / "songs.csv"
    with open(table, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["vocal", "backing", "mix"])
        w.writerow(["songs/song0/vocals.wav", "songs/song0/accompaniment.wav", "songs/song0/mix.wav"])
    (item,) = discover_mix_songs(table)
    assert item.reference == str(tmp_path / "songs/song0/mix.wav")
    # MUSDB18-HQ: the target is mixture.wav, the backing drums + bass + other.
    song = tmp_path / "musdb" / "train" / "A - B"
    song.mkdir(parents=True)
    for name in ("vocals", "drums", "bass", "other", "mixture"):
        sf.write(song / f"{name}.wav", np.full((4410, 2), 0.1, np.float32), SR, subtype="FLOAT")
    (item,) = discover_mix_songs(tmp_path / "musdb")
    assert item.id == "train/A - B" and item.reference == str(song / "mixture.wav")


def test_prepared_windows_are_the_song_with_zeros_outside(tmp_path):
    src = _write_song_folders(tmp_path / "songs", n_songs=1, seconds=0.1)
    (item,) = discover_mix_songs(src)
    cache = SongCache(prepare_songs([item], tmp_path / "cache"))
    vocal, _ = sf.read(src / "song0" / "vocals.wav", dtype="float32")
    mix, _ = sf.read(src / "song0" / "mix.wav", dtype="float32")
    x, y = cache.window(item.id, start=0, n_in=300, n_out=100, context=100)
    np.testing.assert_array_equal(x[:, :100], 0)  # the context before the song is silence
    np.testing.assert_array_equal(x[0, 100:], vocal[:200])
    np.testing.assert_array_equal(y, mix[:100].T)
    end = len(vocal)
    x, y = cache.window(item.id, start=end - 50, n_in=300, n_out=100, context=100)
    np.testing.assert_array_equal(y[:, 50:], 0)
    np.testing.assert_array_equal(y[:, :50], mix[-50:].T)


def _train_args(src, out, *extra):
    return [
        "train",
        "waveunet",
        str(src),
        "--out",
        str(out),
        "--layers",
        "2",
        "--filters",
        "2",
        "--output-window",
        "256",
        "--steps-per-epoch",
        "3",
        "--batch-size",
        "4",
        "--epochs",
        "2",
        "--patience",
        "2",
        "--lr",
        "1e-3",
        "-q",
        *extra,
    ]


def test_tiny_model_trains_resumes_and_renders_through_the_cli(tmp_path, capsys):
    src = _write_song_folders(tmp_path / "songs")
    out = tmp_path / "model"
    assert main(_train_args(src, out)) == 0
    assert "waveunet: best" in capsys.readouterr().out
    manifest = json.loads((out / "manifest.json").read_text())
    assert set(manifest["targets"]) == {f"song{i}" for i in range(4)}
    assert all(t["kind"] == "reference" for t in manifest["targets"].values())
    assert not set(manifest["splits"]["train"]) & set(manifest["splits"]["val"])
    with open(out / "waveunet.log.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["phase"] for r in rows] == ["untrained", "train", "train", "finetune", "finetune"]
    assert {r["batch_size"] for r in rows if r["phase"] == "finetune"} == {"8"}
    payload = load_waveunet_checkpoint(out / "waveunet.pt")
    assert payload["model_config"]["layers"] == 2

    # Same seed, same data: the same weights; resuming a finished run changes nothing.
    again = tmp_path / "again"
    assert main(_train_args(src, again)) == 0
    other = load_waveunet_checkpoint(again / "waveunet.pt")
    for k, v in payload["state_dict"].items():
        assert torch.equal(v, other["state_dict"][k]), k
    assert main(_train_args(src, again, "--resume")) == 0
    with open(again / "waveunet.log.csv") as fh:
        assert len(list(csv.DictReader(fh))) == 5

    mix = tmp_path / "mix.wav"
    # render measures loudness, which needs a vocal of at least 3 s
    (song := tmp_path / "long").mkdir()
    _write_song_folders(song, n_songs=1, seconds=3.5)
    song = song / "song0"
    assert (
        main(
            [
                "render",
                str(song / "vocals.wav"),
                str(song / "accompaniment.wav"),
                "-o",
                str(mix),
                "--method",
                "waveunet",
                "--model",
                str(out),
                "-q",
            ]
        )
        == 0
    )
    audio, rate = sf.read(mix, always_2d=True)
    assert rate == SR and audio.shape == (int(3.5 * SR), 2) and np.all(np.isfinite(audio))
    doc = json.loads((tmp_path / "mix.settings.json").read_text())
    assert doc["method"] == "waveunet" and doc["settings"] is None and doc["effect_settings"].startswith("none")
    assert doc["report"]["model"]["path"] == str(out / "waveunet.pt")
    # The network's mix goes through the same output stage: loudness target and true-peak ceiling.
    from vocalmix import analysis

    loud = tmp_path / "loud.wav"
    assert (
        main(
            [
                "render",
                str(song / "vocals.wav"),
                str(song / "accompaniment.wav"),
                "-o",
                str(loud),
                "--method",
                "waveunet",
                "--model",
                str(out),
                "--loudness",
                "-20",
                "--ceiling",
                "-2",
                "-q",
            ]
        )
        == 0
    )
    audio, _ = sf.read(loud, always_2d=True, dtype="float32")
    assert abs(analysis.integrated_loudness(audio.T, SR) + 20) < 0.5
    assert analysis.true_peak(audio.T, SR) <= -2 + 1e-3


def _one_line_error(capsys, code, *fragments):
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("vocalmix: error:"), err
    for f in fragments:
        assert f in lines[0]


def test_export_stems_and_settings_of_a_waveunet_render_are_refused(tmp_path, capsys):
    src = _write_song_folders(tmp_path / "songs", n_songs=1, seconds=0.3)
    song = src / "song0"
    args = [
        "render",
        str(song / "vocals.wav"),
        str(song / "accompaniment.wav"),
        "-o",
        str(tmp_path / "m.wav"),
        "--method",
        "waveunet",
        "-q",
    ]
    _one_line_error(capsys, main([*args, "--stems"]), "--stems", "waveunet")
    _one_line_error(capsys, main([*args, "--export", str(tmp_path / "presets")]), "--export", "waveunet")
    assert not (tmp_path / "m.wav").exists() and not (tmp_path / "presets").exists()
    # A settings file written by a waveunet render has no settings to export or re-render.
    settings = tmp_path / "w.settings.json"
    settings.write_text(
        json.dumps({"schema_version": 1, "method": "waveunet", "settings": None, "effect_settings": "none"})
    )
    _one_line_error(
        capsys, main(["export", str(settings), "--to", str(tmp_path / "p")]), "waveunet", "no effect settings"
    )
    _one_line_error(capsys, main([*args[:5], "--settings", str(settings), "-q"]), "waveunet", "no effect settings")


def test_shipped_checkpoint_loads_and_renders_a_short_input(tmp_path):
    from vocalmix.methods import get_method
    from vocalmix.methods.waveunet import default_model_dir

    if not (default_model_dir() / "waveunet.pt").is_file():
        pytest.fail("the shipped Wave-U-Net checkpoint is missing from vocalmix/models/waveunet")
    assert (default_model_dir() / "MODEL_CARD.md").is_file()
    method = get_method("waveunet")
    t = np.arange(SR) / SR
    vocal = (0.3 * np.sin(2 * np.pi * 220 * t) * (t % 0.5 < 0.4))[None].astype(np.float32)
    backing = np.stack([0.2 * np.sin(2 * np.pi * 110 * t), 0.2 * np.sin(2 * np.pi * 165 * t)]).astype(np.float32)
    decision = method.decide(vocal, backing, SR)
    assert decision.mix.shape == (2, SR) and np.all(np.isfinite(decision.mix))
    # A mixer, not noise: the output follows the summed inputs closely in level and shape.
    plain = vocal + backing
    corr = np.sum(decision.mix * plain) / np.sqrt(np.sum(decision.mix**2) * np.sum(plain**2))
    level_db = 10 * np.log10(np.mean(decision.mix**2) / np.mean(plain**2))
    assert corr > 0.8 and abs(level_db) < 12
    assert decision.report["model"]["n_parameters"] == method.model.n_parameters()
    # At the shipped depth (10 levels, 2 x 16375 samples of context) small windows still join exactly.
    np.testing.assert_allclose(
        mix_windowed(method.model, vocal, backing, window_output=3000),
        mix_one_shot(method.model, vocal, backing),
        rtol=0,
        atol=1e-6,
    )


def test_package_data_ships_the_waveunet_folder():
    import fnmatch
    from pathlib import Path

    tomllib = pytest.importorskip("tomllib", reason="tomllib needs Python 3.11")

    root = Path(__file__).resolve().parents[1]
    globs = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["vocalmix"]
    for name in ("waveunet.pt", "MODEL_CARD.md"):
        assert any(fnmatch.fnmatch(f"models/waveunet/{name}", g) for g in globs), name


def test_interrupted_training_resumes_on_the_uninterrupted_path(tmp_path):
    from vocalmix.training.waveunet_train import WaveUNetTrainConfig, train_waveunet

    src = _write_song_folders(tmp_path / "songs", n_songs=3, seconds=0.2)
    config = dict(
        layers=2,
        filters_per_layer=2,
        output_window=128,
        steps_per_epoch=2,
        batch_size=3,
        lr=1e-3,
        finetune=False,
        val_windows=4,
    )
    train_waveunet(src, tmp_path / "straight", WaveUNetTrainConfig(**config, max_epochs=2), progress=False)
    train_waveunet(src, tmp_path / "cut", WaveUNetTrainConfig(**config, max_epochs=1), progress=False)
    train_waveunet(src, tmp_path / "cut", WaveUNetTrainConfig(**config, max_epochs=2), resume=True, progress=False)
    a = load_waveunet_checkpoint(tmp_path / "straight" / "waveunet.last.pt")
    b = load_waveunet_checkpoint(tmp_path / "cut" / "waveunet.last.pt")
    assert a["epoch"] == b["epoch"] == 2
    for k, v in a["state_dict"].items():
        assert torch.equal(v, b["state_dict"][k]), k
    assert [r["val_loss"] for r in a["history"]] == [r["val_loss"] for r in b["history"]]
