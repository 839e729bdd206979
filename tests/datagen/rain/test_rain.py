"""RaIN: the VAE, checkpoints, generation, the sample command line."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from datagen import rain
from datagen.rain import cli as rain_cli
from datagen.rain import pool as rain_pool
from datagen.rain import train as rt
from models.archs.adain import channel_stats
from tests.helpers import BUNDLED, bundled_faces, small_faces, small_fits, train_tiny_rain

SHARDS = {"samples_per_shard": 16}


def tiny_model(output: str, luminance_only: bool = True, layout_grid: int = 0) -> rain.RaIN:
    torch.manual_seed(0)
    config = rain.ModelConfig(64, 4, 16, 0.125, luminance_only, output, layout_grid)
    return rain.RaIN(config)


def constant_decoder(model: rain.RaIN, value: float) -> None:
    """Make the decoder paint ``value`` everywhere, whatever its input."""
    last = model.decoder.net[-1]
    torch.nn.init.zeros_(last.weight)
    torch.nn.init.constant_(last.bias, value)


def test_vae_reconstructs_its_training_statistics_better_than_chance(tiny_rain):
    _, model, pool = tiny_rain
    trained = rt.stats_reconstruction_error(model, pool)
    torch.manual_seed(1)
    untrained = rain.RaIN(model.config, model.encoder)
    untrained.stats_mean.copy_(model.stats_mean)
    untrained.stats_std.copy_(model.stats_std)
    chance = rt.stats_reconstruction_error(untrained, pool)
    # on standardised statistics, predicting the pool mean scores 1.0
    assert trained < 0.3 < 0.9 < chance


def test_checkpoint_round_trip(tiny_rain, tmp_path):
    folder, model, _ = tiny_rain
    loaded = rain.load(folder)
    for k, v in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[k], v), k
    assert loaded.config == model.config
    face = bundled_faces(1, 64)[0]
    z = rain.latents(3, 2, model.config.latent)
    a = rain.relight_face(model, face, z)
    b = rain.relight_face(loaded, face, z)
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    # the file holds weights only: safetensors, loadable without pickle
    from safetensors.torch import load_file

    assert set(load_file(str(folder / rain.CHECKPOINT))) == set(model.state_dict())


def test_training_twice_gives_the_same_checkpoint_bytes(tiny_rain, tmp_path):
    import hashlib

    folder, _, _ = tiny_rain
    model, _, _ = train_tiny_rain()
    again = rain.save(model, tmp_path, extra={"seed": 0})
    rain.save(model, tmp_path / "b", extra={"seed": 0})
    first = (folder / rain.CHECKPOINT).read_bytes()
    # same params, same seed: same weights and same file (safetensors' header order fixed)
    torch.testing.assert_close(rain.load(folder).state_dict(), model.state_dict(), rtol=0, atol=0)
    digest = hashlib.sha256(again.read_bytes()).hexdigest()
    assert digest == hashlib.sha256((tmp_path / "b" / rain.CHECKPOINT).read_bytes()).hexdigest()
    rain.save(model, tmp_path / "c")
    assert (tmp_path / "c" / rain.CHECKPOINT).read_bytes() == first


def test_checkpoint_errors(tmp_path):
    with pytest.raises(rain.CheckpointError, match="no RaIN checkpoint"):
        rain.load(tmp_path)
    bad = tmp_path / "rain.safetensors"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(rain.CheckpointError, match="not a readable"):
        rain.load(bad)


def test_relight_keeps_the_input_size(tiny_rain):
    _, model, _ = tiny_rain
    face = bundled_faces(1, 100)[0][:, :90]  # neither side a multiple of 8
    out = rain.relight_face(model, face, rain.latents(0, 3, model.config.latent))
    assert [o.shape for o in out] == [face.shape] * 3


def test_recolour_takes_the_luminance_and_keeps_the_chroma():
    face = bundled_faces(1, 64)[0]
    ramp = np.linspace(0.2, 1.0, 64)[None, :, None]
    grey = (face.astype(float) @ np.array(rain.LUMA))[..., None] * ramp  # a relit grey face
    content = rain.to_tensor(face)
    relit = rain.to_tensor(np.repeat(grey, 3, 2).round().astype(np.uint8))
    out = rain.to_uint8(rain.recolour(content, relit))[0].astype(float)
    yw = np.array(rain.LUMA)
    ok = (out > 2).all(2) & (out < 253).all(2)
    assert ok.mean() > 0.9
    assert np.abs(out @ yw - grey[..., 0])[ok].max() <= 1.0  # the relit luminance
    chroma_in = face - (face.astype(float) @ yw)[..., None]
    chroma_out = out - (out @ yw)[..., None]
    assert np.abs(chroma_in - chroma_out)[ok].max() <= 1.5  # the content's chroma
    assert np.abs(out - face).mean() > 10  # and it did change


def test_latents_do_not_depend_on_batching():
    z = rain.latents(7, 5, 16)
    assert torch.equal(z[:2], rain.latents(7, 2, 16))
    assert not torch.equal(z, rain.latents(8, 5, 16))


def test_slerp_ends_at_both_seeds():
    a, b = rain.latents(1, 1, 32)[0], rain.latents(2, 1, 32)[0]
    path = rain_cli.slerp(a, b, 5)
    assert torch.allclose(path[0], a, atol=1e-5) and torch.allclose(path[-1], b, atol=1e-5)
    norms = path.norm(dim=1)
    assert norms.min() > 0.8 * min(a.norm(), b.norm())  # no dip towards the origin


def photo() -> Path:
    return BUNDLED / "neutral_front" / "001_03.jpg"


def run_cli(*args: str) -> int:
    return rain_cli.main(["sample", *args])


def test_cli_writes_n_distinct_images_of_the_input_size_and_a_grid(tiny_rain, tmp_path):
    folder, _, _ = tiny_rain
    out = tmp_path / "x"
    assert run_cli("--checkpoint", str(folder), "--input", str(photo()), "--n", "4",
                   "--seed", "1", "--out", str(out)) == 0  # fmt: skip
    files = sorted(out.glob("001_03_*.png"))
    assert len(files) == 4
    ims = [cv2.imread(str(f)) for f in files]
    assert all(im.shape == (512, 512, 3) for im in ims)
    assert len({im.tobytes() for im in ims}) == 4
    assert (out / "grid.png").is_file()
    manifest = json.loads((out / "manifest.json").read_text())
    assert [m["file"] for m in manifest] == [f.name for f in files]
    assert np.allclose(manifest[1]["z"], rain.latents(1, 4, 8)[1].numpy(), atol=1e-6)

    again = tmp_path / "y"
    run_cli("--checkpoint", str(folder), "--input", str(photo()), "--n", "4", "--seed", "1",
            "--out", str(again))  # fmt: skip
    for f in files:
        assert (again / f.name).read_bytes() == f.read_bytes()


def test_cli_explicit_latents_interpolation_and_folders(tiny_rain, tmp_path):
    folder, _, _ = tiny_rain
    src = tmp_path / "in"
    (src / "sub").mkdir(parents=True)
    for i, f in enumerate(bundled_faces(2, 72)):
        cv2.imwrite(str(src / ("sub" if i else ".") / f"f{i}.png"), f)
    out = tmp_path / "out"
    z = ",".join(["0.5"] * 8)
    assert run_cli("--checkpoint", str(folder), "--input", str(src), "--z", z, "--z", z,
                   "--out", str(out), "--no-grid") == 0  # fmt: skip
    names = sorted(p.name for p in out.glob("*.png"))
    assert names == ["f0_000.png", "f0_001.png", "sub_f1_000.png", "sub_f1_001.png"]
    assert (out / "f0_000.png").read_bytes() == (out / "f0_001.png").read_bytes()

    interp = tmp_path / "interp"
    assert run_cli("--checkpoint", str(folder), "--input", str(src / "f0.png"),
                   "--interpolate", "3", "4", "--n", "3", "--out", str(interp)) == 0  # fmt: skip
    seed3 = tmp_path / "seed3"
    run_cli("--checkpoint", str(folder), "--input", str(src / "f0.png"), "--seed", "3", "--n",
            "1", "--out", str(seed3))  # fmt: skip
    assert (interp / "f0_000.png").read_bytes() == (seed3 / "f0_000.png").read_bytes()


def test_cli_clear_errors(tiny_rain, tmp_path, capsys):
    folder, _, _ = tiny_rain
    assert run_cli("--checkpoint", str(tmp_path / "none"), "--input", str(photo())) == 2
    assert "no RaIN checkpoint" in capsys.readouterr().err
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8 not really a jpeg")
    assert run_cli("--checkpoint", str(folder), "--input", str(broken)) == 2
    assert "cannot use this image" in capsys.readouterr().err
    assert run_cli("--checkpoint", str(folder), "--input", str(tmp_path / "nope.png")) == 2
    assert "no such file" in capsys.readouterr().err
    assert run_cli("--checkpoint", str(folder), "--input", str(photo()), "--z", "1,2") == 2
    assert "latent has 8 values" in capsys.readouterr().err
    blank = tmp_path / "blank.png"
    cv2.imwrite(str(blank), np.full((200, 200, 3), 128, np.uint8))
    assert run_cli("--checkpoint", str(folder), "--input", str(blank), "--align",
                   "--out", str(tmp_path / "o")) == 2  # fmt: skip
    assert "no face found" in capsys.readouterr().err


def test_cli_align_crops_to_the_training_size(tiny_rain, tmp_path):
    folder, _, _ = tiny_rain
    out = tmp_path / "a"
    assert run_cli("--checkpoint", str(folder), "--input", str(photo()), "--align", "--n", "2",
                   "--out", str(out)) == 0  # fmt: skip
    assert cv2.imread(str(out / "001_03_000.png")).shape == (64, 64, 3)


def test_params_are_checked():
    with pytest.raises(KeyError, match="unknown key"):
        rain.RainParams.from_params({"latnet": 3})
    with pytest.raises(KeyError, match="unknown key"):
        rain.RainParams.from_params({"weights": {"styel": 1}})
    with pytest.raises(ValueError, match="multiple of 8"):
        rain.RainParams.from_params({"size": 100})
    with pytest.raises(ValueError, match="rain.output must be one of"):
        rain.RainParams.from_params({"output": "gain"})
    with pytest.raises(ValueError, match="layout_grid needs rain.output: shading"):
        rain.RainParams.from_params({"output": "image", "layout_grid": 4})
    with pytest.raises(ValueError, match="rain.prior must be one of"):
        rain.RainParams.from_params({"prior": "uniform"})
    with pytest.raises(ValueError, match="rain.layout_steps must be >= 0"):
        rain.RainParams.from_params({"layout_steps": -1})
    p = rain.RainParams.from_params({"style_folders": ["a", "b"], "weights": {"kl": 0.1}})
    assert p.style_folders == ("a", "b") and p.weights.kl == 0.1 and p.weights.style == 10.0


def test_shading_output_multiplies_the_face_and_keeps_its_chromaticity():
    model = tiny_model("shading")
    constant_decoder(model, -0.5)
    face = rain.to_tensor(bundled_faces(1, 64))
    out = model.relight(face, torch.zeros(1, 4))
    assert torch.allclose(out, face * np.exp(-0.5), atol=1e-6)
    # the gain is bounded: a decoder painting 9 cannot blow the face up by e^9
    constant_decoder(model, 9.0)
    grey = torch.full((1, 3, 64, 64), 0.01)
    assert torch.allclose(model.relight(grey, torch.zeros(1, 4)), grey * np.exp(rain.LOG_GAIN[1]))


def test_image_output_paints_the_face_itself():
    model = tiny_model("image", luminance_only=False)
    constant_decoder(model, 0.25)
    face = rain.to_tensor(bundled_faces(1, 64))
    assert torch.allclose(model.relight(face, torch.zeros(1, 4)), torch.full_like(face, 0.25))


def test_paired_term_is_zero_only_for_the_relit_face_it_pairs_with():
    model = tiny_model("shading")
    constant_decoder(model, -0.5)
    face = rain.to_tensor(bundled_faces(2, 64))
    relit, other = face * np.exp(-0.5), face.flip(0) * np.exp(-0.5)
    with torch.no_grad():
        feats = model.encoder(model.prepare(relit))
        s = model.standardise(feats[-1])
        layers = [channel_stats(f) for f in feats]

        def paired(target):
            w = rain.LossWeights(paired=1.0)
            terms = rain.decoder_losses(
                model, model.content(face), face, s, layers, w, paired_rgb=target
            )
            return terms["paired"]

        assert float(paired(relit)) < 1e-6 < 0.01 < float(paired(other))
        no_pairs = rain.decoder_losses(
            model, model.content(face), face, s, layers, rain.LossWeights(paired=1.0)
        )
    assert "paired" not in no_pairs


def test_physical_pool_pairs_each_relit_image_with_its_face(tmp_path_factory):
    from datagen.face3d.relight import RelightParams

    faces_dir = small_faces(tmp_path_factory, ("001", "002", "003"), 0.0, SHARDS)
    fits_dir = small_fits(tmp_path_factory, faces_dir, SHARDS)
    content = rain_pool.content_faces(faces_dir, 64)
    pool = rain_pool.physical_pool(faces_dir, fits_dir, 64, 2, RelightParams(), seed=0)
    assert len(pool.content_index) == len(pool.images) == 2 * len(content)

    def edges(image):
        grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float32)
        e = cv2.Laplacian(cv2.GaussianBlur(grey, (3, 3), 0), cv2.CV_32F).ravel()
        return (e - e.mean()) / e.std()

    c = np.stack([edges(f) for f in content])
    for image, i in zip(pool.images, pool.content_index, strict=True):
        assert int(np.argmax(c @ edges(image))) == i


def test_layout_grid_lays_its_gains_over_the_face():
    model = tiny_model("shading", layout_grid=2)
    constant_decoder(model, 0.0)
    last = model.decoder.layout[-1]
    torch.nn.init.zeros_(last.weight)
    with torch.no_grad():
        last.bias.copy_(torch.tensor([-2.0, 0.0, -2.0, 0.0]))  # row-major 2 x 2: dark left
    face = rain.to_tensor(bundled_faces(1, 64))
    gain = model.relight(face, torch.zeros(1, 4)).sum((0, 1, 2)) / face.sum((0, 1, 2))
    # bilinear between the cell centres (columns 16 and 48), flat outside them
    assert torch.allclose(gain[:16], torch.tensor(np.exp(-2.0)).float(), atol=1e-4)
    assert torch.allclose(gain[48:], torch.ones(16), atol=1e-4)
    assert bool((gain[16:48].diff() > 0).all())


def lit_from(faces: np.ndarray, side: str) -> np.ndarray:
    """The faces under a hard light from the image's ``side``: a steep left-right ramp."""
    ramp = np.linspace(1.0, 0.15, faces.shape[2])
    ramp = ramp if side == "left" else ramp[::-1]
    return (faces * ramp[None, None, :, None]).round().astype(np.uint8)


def left_right(images: np.ndarray) -> np.ndarray:
    """(right - left) / (right + left) of each image's mean luminance halves."""
    y = np.asarray(images, np.float64) @ np.asarray(rain.LUMA)
    w = y.shape[2] // 2
    left, right = y[:, :, :w].mean((1, 2)), y[:, :, w:].mean((1, 2))
    return (right - left) / (right + left)


def test_a_rain_trained_on_two_lights_samples_both_not_their_mean():
    """The pool holds every face lit from the left and from the right, nothing in between. A
    RaIN that averaged the modes would paint flat light; ours must sample both sides."""
    from tests.helpers import TINY_RAIN

    faces = bundled_faces(12, 64)
    images = np.concatenate([lit_from(faces, "left"), lit_from(faces, "right")])
    pool = rain_pool.StylePool(images, [], [], content_index=np.tile(np.arange(12), 2))
    target = np.abs(left_right(images)).mean()
    p = rain.RainParams.from_params(
        {
            **TINY_RAIN,
            "layout_grid": 4,
            "layout_steps": 300,
            "prior": "posterior",
            "vae_steps": 1500,
        }
    )
    model, summary = rt.train(faces, pool, p, 0, torch.device("cpu"), progress=False)
    assert summary["layout_losses"]["layout"] < 0.1
    sides = []
    for face in faces[:3]:
        lr = left_right(np.stack(rain.relight_face(model, face, rain.latents(1, 24, 8))))
        lr -= left_right(face[None])[0]  # the photo's own light is not the model's
        sides.append(lr)
        print(f"pool |L-R| {target:.3f}; samples: {np.round(np.sort(lr), 2)}")
        assert (lr > 0.4 * target).mean() > 0.2 and (lr < -0.4 * target).mean() > 0.2
    # few samples in the flat middle, where the mean of the two lights lies
    assert (np.abs(np.concatenate(sides)) < 0.2 * target).mean() < 0.3


def test_log_gain_grid_reads_back_a_known_light():
    face = rain.to_tensor(bundled_faces(1, 64)).clamp_min(0.3)
    gain = torch.linspace(-1.5, 0.5, 64).view(1, 1, 1, 64)  # log-gain rising to the right
    grid = rain.log_gain_grid(face, face * gain.exp(), 4)
    assert grid.shape == (1, 1, 4, 4)
    want = gain.view(4, 16).mean(1)  # each column of cells: the mean of its 16 columns
    # within 10%: the 2% floor pulls the darkest cells a little towards 0
    assert torch.allclose(grid[0, 0], want.expand(4, 4), rtol=0.1, atol=0.02)


def test_fit_prior_samples_the_pools_posteriors():
    model = tiny_model("shading")
    torch.manual_seed(1)
    s = torch.randn(200, rain.STATS) * 0.5 + 1.0
    with torch.no_grad():
        mu, _ = model.vae.encode(s)
        model.fit_prior(s)
        z = model.prior_mean + rain.latents(0, 4000, 4) @ model.prior_chol.T
    assert torch.allclose(z.mean(0), mu.mean(0), atol=0.05)
    # the spread: the posteriors' means plus their own noise
    assert bool((z.std(0) >= mu.std(0) * 0.95).all())
    # a checkpoint keeps it; one from before it samples N(0, I)
    fresh = tiny_model("shading")
    assert torch.equal(fresh.prior_chol, torch.eye(4)) and not torch.equal(
        model.prior_chol, torch.eye(4)
    )
