"""cnn-e2e: parameterisation, gradients through every effect, training steps, the shipped model."""

import csv
import logging
import math
from dataclasses import replace

import numpy as np
import pytest
import torch

from vocalmix.methods import cnn_e2e
from vocalmix.nets import e2e_outputs
from vocalmix.settings import ParamSpec
from vocalmix.training import e2e
from vocalmix.training import e2e_params as P
from vocalmix.training.losses import GroupGradientBalance, MultiResolutionSTFT, k_loudness

SR = e2e.SAMPLE_RATE


@pytest.fixture(scope="module")
def tiny_pairs():
    """Four undo pairs from one synthetic vocal (1.6 s clips, 16-line reverb)."""
    torch.manual_seed(0)
    return e2e.make_pairs("synthetic:1", e2e.PairConfig(n_pairs=4, seed=3))


def _export_warnings(settings, tmp_path, caplog):
    from vocalmix.export import export_settings

    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="vocalmix"):
        export_settings(settings, tmp_path, force=True)
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


def test_search_ranges_lie_inside_the_settings_schema_and_round_trip():
    for d in e2e_outputs.DECIDED:
        assert isinstance(d.spec, ParamSpec)
        assert d.spec.minimum <= d.low < d.high <= d.spec.maximum, d.name
        for value in (d.low, d.high, math.sqrt(d.low * d.high) if d.scale == "log" else (d.low + d.high) / 2):
            u = d.to_unit(value)
            assert float(d.from_unit(torch.tensor(u, dtype=torch.float64))) == pytest.approx(value, rel=1e-9)
    # The floors that keep gradients alive are above the dead values.
    assert e2e_outputs.DECIDED[e2e_outputs.INDEX["compressor.attack_ms"]].low > 0
    assert e2e_outputs.DECIDED[e2e_outputs.INDEX["compressor.release_ms"]].low > 0
    assert e2e_outputs.DECIDED[e2e_outputs.INDEX["compressor.knee_db"]].low > 0
    assert e2e_outputs.DECIDED[e2e_outputs.INDEX["reverb.dry_wet_pct"]].low > 0
    assert e2e_outputs.THRESHOLD_RELATIVE_DB[1] < 0


def test_ratio_reaches_the_infinite_switch_only_at_inference():
    u = torch.ones(1, e2e_outputs.N_OUTPUTS)
    phys = e2e_outputs.to_physical(u)
    assert float(phys["compressor.ratio"]) == pytest.approx(16.0)
    train = P.chain_params(phys, torch.zeros(1), None, training=True)
    infer = P.chain_params(phys, torch.zeros(1), None, training=False)
    assert float(train.compressor.ratio) <= P.TRAINING_RATIO_CAP < float(infer.compressor.ratio)


@pytest.mark.parametrize("seed", range(4))
def test_every_prediction_validates_and_exports_without_warnings(seed, tmp_path, caplog):
    g = torch.Generator().manual_seed(seed)
    u = torch.rand(6, e2e_outputs.N_OUTPUTS, generator=g)
    u[0], u[1] = 0.0, 1.0  # both ends of every search range
    u[2] = (u[2] > 0.5).float()
    phys = e2e_outputs.to_physical(u.double())
    for row in range(u.shape[0]):
        values = {k: float(v[row]) for k, v in phys.items()}
        peak = float(torch.empty(1).uniform_(-60, 3, generator=g))
        gain = float(torch.empty(1).uniform_(-80, 60, generator=g))  # beyond the gain range on purpose
        settings = e2e_outputs.to_mix_settings(values, input_peak_db=peak, vocal_gain_db=gain)
        settings.validate()
        assert _export_warnings(settings, tmp_path, caplog) == []


def test_decided_settings_from_audio_validate_and_export(tiny_pairs, tmp_path, caplog):
    vocal = tiny_pairs["degraded"][0].numpy()
    backing = tiny_pairs["backing"][0].numpy()
    for u in (torch.zeros(e2e_outputs.N_OUTPUTS), torch.ones(e2e_outputs.N_OUTPUTS)):
        values = {k: float(v[0]) for k, v in e2e_outputs.to_physical(u[None].double()).items()}
        settings, report = cnn_e2e.settings_from_values(values, vocal, backing, SR)
        settings.validate()
        assert _export_warnings(settings, tmp_path, caplog) == []
        assert report["compressor_input_peak_db"] < 0


def test_render_reaches_the_predicted_level_and_places_the_threshold_against_the_peak(tiny_pairs):
    u = torch.rand(2, e2e_outputs.N_OUTPUTS, generator=torch.Generator().manual_seed(1))
    phys = e2e_outputs.to_physical(u)
    deg, bak = tiny_pairs["degraded"][:2], tiny_pairs["backing"][:2]
    with torch.no_grad():
        out, info = e2e.render(deg, bak, phys, SR, fdn_lines=16)
    reached = k_loudness(out, SR) - k_loudness(bak, SR)
    assert torch.allclose(reached, phys["level.relative_loudness_lu"], atol=0.01)
    assert torch.all(info["input_peak_db"] < 0)


def test_gradients_reach_the_network_through_each_effect(tiny_pairs):
    torch.manual_seed(0)
    model = e2e.build_predictor(dropout=0.0).train()
    deg, bak, tgt = tiny_pairs["degraded"][:2], tiny_pairs["backing"][:2], tiny_pairs["target"][:2]
    u = cnn_e2e.predict_units(model, e2e.clip_blocks(deg, bak))
    u.retain_grad()
    rendered, _ = e2e.render(deg, bak, e2e_outputs.to_physical(u), SR, fdn_lines=16)
    loss, _ = e2e.e2e_loss(rendered, tgt, bak, u, MultiResolutionSTFT())
    loss.backward()
    out_grad = model.output_layer.weight.grad  # row i only hears setting i
    for group in ("eq_filters", "eq_gains", "compressor", "reverb", "reverb_shelves", "level"):
        rows = [i for i, d in enumerate(e2e_outputs.DECIDED) if d.group == group]
        assert torch.isfinite(u.grad[:, rows]).all(), group
        assert u.grad[:, rows].abs().amax(dim=0).min() > 0, f"{group}: a setting gets no gradient"
        assert out_grad[rows].abs().sum() > 0, group
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name


def test_a_few_end_to_end_steps_lower_the_audio_loss_and_change_every_weight_group(tiny_pairs):
    torch.manual_seed(0)
    model = e2e.build_predictor(dropout=0.0).train()
    balance = GroupGradientBalance(P.group_index()).train()
    stft = MultiResolutionSTFT()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    deg, bak, tgt = tiny_pairs["degraded"][:2], tiny_pairs["backing"][:2], tiny_pairs["target"][:2]
    before = {n: p.detach().clone() for n, p in model.named_parameters()}

    def audio_loss():
        with torch.no_grad():
            u = cnn_e2e.predict_units(model, e2e.clip_blocks(deg, bak))
            out, _ = e2e.render(deg, bak, e2e_outputs.to_physical(u), SR, fdn_lines=16)
            return float(stft(out, tgt))

    start = audio_loss()
    for _ in range(3):
        u = balance(cnn_e2e.predict_units(model, e2e.clip_blocks(deg, bak)))
        out, _ = e2e.render(deg, bak, e2e_outputs.to_physical(u), SR, fdn_lines=16)
        loss, _ = e2e.e2e_loss(out, tgt, bak, u, stft)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert audio_loss() < start
    for name, p in model.named_parameters():
        assert not torch.equal(p.detach(), before[name]), f"{name} did not change"


def test_undo_pairs_are_deterministic_from_the_seed():
    a = e2e.make_pairs("synthetic:1", e2e.PairConfig(n_pairs=2, seed=5))
    b = e2e.make_pairs("synthetic:1", e2e.PairConfig(n_pairs=2, seed=5))
    for key in ("degraded", "backing", "target"):
        assert torch.equal(a[key], b[key])
    assert e2e.manifest_sha256(a["manifest"]) == e2e.manifest_sha256(b["manifest"])


def test_train_command_writes_a_log_resumes_and_its_checkpoint_decides(tmp_path):
    from vocalmix.cli import main

    out = tmp_path / "run"
    args = ["train", "cnn-e2e", "synthetic:1", "--out", str(out), "--pairs", "8", "--batch-size", "2", "-q"]
    assert main([*args, "--steps", "1"]) == 0
    assert main([*args, "--steps", "2"]) == 2  # an earlier run is there: refused without --resume
    assert main([*args, "--steps", "2", "--resume"]) == 0
    rows = list(csv.DictReader(open(out / "cnn_e2e.log.csv")))
    assert [r["step"] for r in rows] == ["1", "2"]
    assert all(math.isfinite(float(r["loss"])) for r in rows)
    method = cnn_e2e.CnnE2EMethod(out)
    pairs = torch.load(out / "pairs.pt", weights_only=True)
    decision = method.decide(_song_vocal(), _song_backing(), SR)
    decision.settings.validate()
    assert decision.report["dataset_manifest_sha256"] == e2e.manifest_sha256(pairs["manifest"])


def _song_vocal():
    from vocalmix.training.synthesis import synthetic_vocal

    return synthetic_vocal(4.0, SR, np.random.default_rng(0))


def _song_backing():
    from vocalmix.training.synthesis import synthetic_backing

    return synthetic_backing(4.0, SR, np.random.default_rng(1))[:, : int(4.0 * SR)]


def test_shipped_checkpoint_loads_and_renders(tmp_path, caplog):
    from vocalmix.methods import get_method
    from vocalmix.mixing import render_mix

    method = get_method("cnn-e2e")
    vocal, backing = _song_vocal(), _song_backing()
    decision = method.decide(vocal, backing, SR)
    settings = decision.settings.validate()
    assert decision.report["method"] == "cnn-e2e" and len(decision.report["checkpoint_sha256"]) == 64
    assert decision.report["dataset_manifest_sha256"]
    assert _export_warnings(settings, tmp_path, caplog) == []
    mix = render_mix(vocal, backing, SR, settings)
    assert np.isfinite(mix.mix).all() and np.abs(mix.vocal).max() > 0


def test_render_help_lists_cnn_e2e(capsys):
    from vocalmix.cli import main

    assert main(["render", "--help"]) == 0
    assert "cnn-e2e" in capsys.readouterr().out


def test_a_missing_model_folder_is_one_clear_error(tmp_path):
    from vocalmix.errors import InputError

    with pytest.raises(InputError, match="not found"):
        cnn_e2e.CnnE2EMethod(tmp_path / "nowhere")


def test_training_is_deterministic_given_the_seed(tmp_path):
    config = e2e.E2EConfig(steps=1, batch_size=2, n_pairs=8, seed=4, val_every=1)
    runs = [e2e.train_e2e("synthetic:1", tmp_path / name, config, progress=False) for name in ("a", "b")]
    states = [torch.load(r.checkpoint, weights_only=True)["state_dict"] for r in runs]
    for key in states[0]:
        assert torch.equal(states[0][key], states[1][key]), key
    assert runs[0].best_val == runs[1].best_val


def test_learning_rate_decays_by_a_half_cosine_from_lr_to_lr_final():
    config = e2e.E2EConfig(steps=100, lr=1e-3, lr_final=1e-4)
    assert e2e.learning_rate(config, 0) == pytest.approx(1e-3)
    assert e2e.learning_rate(config, 50) == pytest.approx(5.5e-4)  # halfway: the mean
    assert e2e.learning_rate(config, 25) == pytest.approx(1e-4 + 0.5 * 9e-4 * (1 + math.cos(math.pi / 4)))
    assert e2e.learning_rate(config, 100) == pytest.approx(1e-4)
    assert e2e.learning_rate(config, 150) == pytest.approx(1e-4)  # a resume past --steps stays at the floor
    assert e2e.learning_rate(e2e.E2EConfig(lr=2e-4), 77) == 2e-4  # no lr_final: constant


def test_fresh_batches_are_new_every_step_and_the_same_for_the_same_step():
    sources = e2e._load_sources("synthetic:1", 0, 0)[0]
    a = e2e.fresh_batch(sources, 2, 1.6, seed=0, step=3)
    b = e2e.fresh_batch(sources, 2, 1.6, seed=0, step=3)
    c = e2e.fresh_batch(sources, 2, 1.6, seed=0, step=4)
    n = int(round(1.6 * SR))
    assert [tuple(x.shape) for x in a] == [(2, 1, n), (2, 2, n), (2, 2, n)]
    for x, y, z in zip(a, b, c, strict=True):
        assert torch.equal(x, y)
        assert not torch.equal(x, z)
    degraded, backing, target = a
    # The target sits at a drawn vocal-to-backing loudness inside the target prior's range.
    lo, hi = e2e.TARGET_PRIOR["level.relative_loudness_lu"][1:]
    reached = k_loudness(target, SR) - k_loudness(backing, SR)
    assert torch.all(reached > lo - 0.01) and torch.all(reached < hi + 0.01)
    assert not torch.allclose(degraded.expand_as(target), target, atol=1e-3)


def test_fresh_pair_training_resumes_exactly(tmp_path):
    config = e2e.E2EConfig(steps=2, batch_size=2, n_pairs=2, seed=4, val_every=1, fresh_pairs=True, lr_final=1e-5)
    whole = e2e.train_e2e("synthetic:1", tmp_path / "whole", config, progress=False)
    e2e.train_e2e("synthetic:1", tmp_path / "parts", replace(config, steps=1), progress=False)
    parts = e2e.train_e2e("synthetic:1", tmp_path / "parts", config, progress=False)
    assert whole.steps_run == parts.steps_run == 2
    last = [torch.load(tmp_path / d / "cnn_e2e.last.pt", weights_only=True)["state_dict"] for d in ("whole", "parts")]
    for key in last[0]:
        assert torch.equal(last[0][key], last[1][key]), key


def test_degradation_through_the_dsp_parameter_types_renders_as_the_flat_effect_calls():
    """``degrade`` builds EQParams/ReverbParams; the audio is what the effects' flat calls give
    for the drawn values it records (the implementation before the parameter types)."""
    from vocalmix.dsp.eq import multi_eq
    from vocalmix.dsp.reverb import fdn_reverb
    from vocalmix.settings import FILTER_TYPES

    vocal = _song_vocal()[0]
    dry = torch.from_numpy(np.stack([vocal[: SR // 2], vocal[SR : SR + SR // 2]]))[:, None]
    config = e2e.DegradationConfig(room_probability=0.5)
    gen = torch.Generator().manual_seed(2)
    degraded, record = e2e.degrade(dry, SR, gen, config)
    assert bool(record["room"].any()) and not bool(record["room"].all())  # both paths taken

    types = torch.tensor(
        [FILTER_TYPES["low_shelf"]] + [FILTER_TYPES["peak"]] * config.resonances + [FILTER_TYPES["high_shelf"]]
    ).expand(2, -1)
    x = multi_eq(dry, SR, record["eq_frequency_hz"], record["eq_gain_db"], record["eq_q"], types)
    env = e2e._envelope_db(x, SR)
    x = x * torch.pow(10.0, (record["expansion"][:, None, None] * (env - env.amax(dim=-1, keepdim=True))) / 20.0)
    idx = torch.nonzero(record["room"]).flatten()
    rt, wet = record["room_time_s"][idx], record["room_wet_pct"][idx] / 100.0
    y = fdn_reverb(x[idx], SR, 10.0, rt, 100.0, 0.5, 0.0, 2000.0, 0.5, -10.0, wet, 0.0, fdn_lines=16)
    x = x.clone()
    x[idx] = y.mean(dim=1, keepdim=True)
    x = x * torch.pow(10.0, record["gain_db"] / 20.0)[:, None, None]
    peak = x.abs().amax(dim=(1, 2), keepdim=True)
    x = torch.where(peak > 0.99, x * 0.99 / peak.clamp_min(1e-9), x)
    assert torch.equal(degraded, x.float())


def test_init_from_the_cnn_folder_skips_the_spectrum_mlp_and_copies_convolutional_layers(tmp_path):
    from vocalmix.errors import InputError
    from vocalmix.methods.cnn import default_model_dir
    from vocalmix.nets.checkpoints import load_checkpoint

    model = e2e.build_predictor()
    head = {k: v.clone() for k, v in model.state_dict().items() if not k.startswith("features.")}
    used = e2e.init_predictor(model, default_model_dir())
    payload = load_checkpoint(used)
    assert payload["model_config"]["architecture"] == "li-lerch-cnn" and not used.endswith("eq.pt")
    for key, value in payload["state_dict"].items():
        if key.startswith("features."):
            assert torch.equal(model.state_dict()[key], value.float()), key
    for key, value in head.items():  # the head keeps its fresh weights and the prior-centre bias
        assert torch.equal(model.state_dict()[key], value), key

    # A folder holding only the spectrum MLP has nothing to start from: one line naming it.
    only_mlp = tmp_path / "mlp"
    only_mlp.mkdir()
    (only_mlp / "eq.pt").write_bytes((default_model_dir() / "eq.pt").read_bytes())
    with pytest.raises(InputError, match="no CNN checkpoint"):
        e2e.init_predictor(e2e.build_predictor(), only_mlp)


def test_init_from_a_cnn_e2e_checkpoint_gives_the_whole_predictor():
    from vocalmix.nets.checkpoints import load_checkpoint

    shipped = cnn_e2e.default_model_dir() / cnn_e2e.CHECKPOINT_NAME
    model = e2e.build_predictor()
    assert e2e.init_predictor(model, shipped.parent) == str(shipped)
    for key, value in load_checkpoint(shipped)["state_dict"].items():
        assert torch.equal(model.state_dict()[key], value.float()), key


def test_augmented_clips_are_other_voices_of_the_same_source():
    """A 440 Hz source drawn with ``augment`` comes out played up to 4 semitones faster or slower."""
    t = np.arange(4 * SR) / SR
    source = (0.5 * np.sin(2 * np.pi * 440.0 * t)).astype(np.float32)
    rng = np.random.default_rng(2)
    dry, backing = e2e._draw_clips([source], 12, 1.6, rng, augment=True)
    n = int(round(1.6 * SR))
    assert dry.shape == (12, 1, n) and backing.shape == (12, 2, n)
    spectrum = np.abs(np.fft.rfft(dry[:, 0].numpy() * np.hanning(n), axis=-1))
    peak_hz = np.argmax(spectrum, axis=-1) * SR / n
    semitones = 12 * np.log2(peak_hz / 440.0)
    assert np.all(np.abs(semitones) <= e2e.SHIFT_SEMITONES + 0.1)
    assert np.sum(np.abs(semitones) > 0.5) >= 6  # most clips are another voice
    assert bool(torch.all(dry.abs().amax(dim=-1) > 0))
    plain, _ = e2e._draw_clips([source], 2, 1.6, np.random.default_rng(2))
    plain_hz = np.argmax(np.abs(np.fft.rfft(plain[:, 0].numpy() * np.hanning(n), axis=-1)), axis=-1) * SR / n
    assert np.allclose(plain_hz, 440.0, atol=1.0)


def test_train_command_takes_the_default_recipe_flags(tmp_path):
    from vocalmix.cli import main
    from vocalmix.nets.checkpoints import load_checkpoint

    out = tmp_path / "run"
    args = ["train", "cnn-e2e", "synthetic:1", "--out", str(out), "--pairs", "8", "--batch-size", "2", "-q"]
    assert main([*args, "--steps", "1", "--augment"]) == 2  # voices of fresh pairs only
    recipe = ["--fresh-pairs", "--lr-final", "1e-5", "--val-every", "1", "--augment", "--formant-voices", "1"]
    recipe += ["--context-blocks", "2"]
    assert main([*args, "--steps", "1", *recipe]) == 0
    config = load_checkpoint(out / "cnn_e2e.pt")["train_config"]
    assert config["fresh_pairs"] and config["augment_voices"] and config["formant_voices"] == 1
    assert config["lr_final"] == 1e-5 and config["val_every"] == 1 and config["context_blocks"] == 2


def test_init_from_a_resume_state_continues_its_optimiser(tmp_path):
    config = e2e.E2EConfig(steps=1, batch_size=2, n_pairs=8, seed=4, val_every=1, fresh_pairs=True)
    e2e.train_e2e("synthetic:1", tmp_path / "a", config, progress=False)
    e2e.train_e2e("synthetic:1", tmp_path / "b", config, init=tmp_path / "a" / "cnn_e2e.last.pt", progress=False)
    second = torch.load(tmp_path / "b" / "cnn_e2e.last.pt", weights_only=True)
    adam_steps = {int(s["step"]) for s in second["optimizer"]["state"].values()}
    assert adam_steps == {2}  # Adam's step count went on from the first run's 1


def test_context_blocks_are_the_clip_s_consecutive_blocks_and_the_settings_their_mean():
    sources = e2e._load_sources("synthetic:1", 0, 0)[0]
    deg, bak, tgt = e2e.fresh_batch(sources, 2, 1.6, seed=0, step=1, context_blocks=3)
    assert deg.shape[-1] == tgt.shape[-1] == int(round(3 * 1.6 * SR))
    blocks = e2e.clip_blocks(deg, bak, 3)
    assert blocks.shape == (6, 2, 128, 64)
    hop = e2e.DEFAULT_FEATURES.hop
    for k in range(3):  # block k of each clip is the first block of the clip from frame 64 k on
        start = k * e2e.DEFAULT_FEATURES.block_frames * hop
        alone = e2e.clip_blocks(deg[..., start:], bak[..., start:], 1)
        assert torch.allclose(blocks.view(2, 3, 2, 128, 64)[:, k], alone, atol=1e-5)
    model = e2e.build_predictor()
    model.eval()
    with torch.no_grad():
        per_block = cnn_e2e.predict_units(model, blocks).view(2, 3, -1)
        assert torch.allclose(e2e.predict_clip_units(model, deg, bak, 3), per_block.mean(dim=1))
        assert not torch.allclose(per_block[:, 0], per_block[:, 1])  # the blocks do differ


def test_a_degradation_part_keeps_only_that_processing():
    """``none`` leaves the gain alone (the output is the input times one gain per item), ``room`` puts a
    room on every item, ``eq`` keeps only the EQ."""
    vocal = _song_vocal()[0]
    dry = torch.from_numpy(np.stack([vocal[: SR // 2], vocal[SR : SR + SR // 2]]))[:, None]
    degraded, record = e2e.degrade(dry, SR, torch.Generator().manual_seed(5), e2e.degradation_part("none"))
    ratio = degraded / dry.where(dry.abs() > 1e-3, torch.ones(()))
    loud = dry.abs() > 1e-3
    for item in range(2):
        r = ratio[item][loud[item]]
        assert float(r.max() - r.min()) < 1e-4 * float(r.abs().max())
    assert not bool(record["room"].any())
    _, record = e2e.degrade(dry, SR, torch.Generator().manual_seed(5), e2e.degradation_part("room"))
    assert bool(record["room"].all())
    eq_only = e2e.degradation_part("eq")
    assert eq_only.expansion == (0.0, 0.0) and eq_only.room_probability == 0.0 and eq_only.resonance_gain_db > 0
    assert e2e.degradation_part("all") == e2e.DegradationConfig()
    with pytest.raises(ValueError, match="unknown degradation part"):
        e2e.degradation_part("reverb")
