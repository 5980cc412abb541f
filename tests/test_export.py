"""Sharing results: ``pygan sample --png-dir`` (N individual PNGs, the pixels the uint8 FID sees) and
``pygan export`` / ``pygan.load_generator`` (safetensors, no pickle) for every model."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch

import pygan
from pygan.cli import main
from pygan.data import load_data
from pygan.export import export_model, load_generator, write_png_samples
from pygan.metrics import extract_features, load_digits_classifier, quantize_uint8
from pygan.metrics._util import _sample_model, load_image_folder
from pygan.models import build_model
from pygan.runs import load_run, run_paths
from pygan.train import train
from tests._tiny import TINY

_SET = ["batch_size=8", "width=8", "n_critic=2", "ema_decay=0.9", "ema_rampup=0.5"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("export") / "run"
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        train(
            "wgan-gp",
            "digits16",
            str(out),
            4,
            overrides=_SET,
            progress=False,
            tensorboard=False,
            sample_every=0,
        )
    finally:
        torch.set_num_threads(before)
    return str(out)


# ---- --png-dir ------------------------------------------------------------------------------------


def test_png_dir_writes_exactly_n_files_equal_to_the_quantized_samples(run, tmp_path, capsys):
    d = tmp_path / "png"
    rc = main(["sample", run, "--png-dir", str(d), "--n", "23", "--batch-size", "10", "--seed", "3"])
    assert rc == 0 and "23 PNG files (ema weights)" in capsys.readouterr().out
    files = sorted(os.listdir(d))
    assert files == [f"{i:06d}.png" for i in range(23)]
    model, _, _ = load_run(run)  # EMA weights, as the command used
    want = _sample_model(model, 23, torch.Generator().manual_seed(3), 10)
    got = load_image_folder(d)
    assert got.shape == (23, 1, 16, 16)
    assert torch.equal(got, quantize_uint8(want))
    # what an FID tool computes from the folder = pygan's uint8 features of the samples
    clf = load_digits_classifier()
    torch.testing.assert_close(
        extract_features(got, clf.features), extract_features(want, clf.features, quantize_mode="uint8")
    )


def test_png_dir_refuses_a_non_empty_directory_unless_overwrite(run, tmp_path, capsys):
    d = tmp_path / "png"
    d.mkdir()
    (d / "old.png").write_bytes(b"x")
    (d / "notes.txt").write_text("keep me")
    rc = main(["sample", run, "--png-dir", str(d), "--n", "3"])
    err = capsys.readouterr().err
    assert rc == 1 and "is not empty" in err and "--overwrite" in err
    assert sorted(os.listdir(d)) == ["notes.txt", "old.png"]
    rc = main(["sample", run, "--png-dir", str(d), "--n", "3", "--overwrite"])
    assert rc == 0
    assert sorted(os.listdir(d)) == ["000000.png", "000001.png", "000002.png", "notes.txt"]


def test_png_dir_no_ema_gives_the_trained_weights(run, tmp_path):
    main(["sample", run, "--png-dir", str(tmp_path / "e"), "--n", "4"])
    main(["sample", run, "--png-dir", str(tmp_path / "r"), "--n", "4", "--no-ema"])
    raw, _, _ = load_run(run, ema=False)
    with open(run_paths(run)["config"]) as f:
        assert raw.run_config == json.load(f)  # load_run keeps config.json, as load_generator does
    want = quantize_uint8(_sample_model(raw, 4, torch.Generator().manual_seed(0), 256))
    assert torch.equal(load_image_folder(tmp_path / "r"), want)
    assert not torch.equal(load_image_folder(tmp_path / "e"), want)


def test_png_dir_two_domain_paired_and_points(tmp_path):
    torch.manual_seed(0)
    spec, overrides = TINY["cogan"]
    data = load_data(spec)
    model = build_model("cogan", data.info, overrides).eval()
    files = write_png_samples(model, None, str(tmp_path / "c"), 5)
    subdirs = sorted(os.listdir(tmp_path / "c"))
    assert len(subdirs) == 2 and len(files) == 10
    assert all(len(os.listdir(tmp_path / "c" / s)) == 5 for s in subdirs)

    spec, overrides = TINY["pix2pix"]

    class Spec:
        def load(self, split):
            return load_data(spec, split)

    p2p = build_model("pix2pix", load_data(spec).info, overrides).eval()
    test = Spec().load("test")
    files = write_png_samples(p2p, Spec(), str(tmp_path / "p"), 4, batch_size=3)
    assert len(files) == 4
    with torch.no_grad():
        want = p2p.translate(test.rows(torch.arange(4))["x"])
    assert torch.equal(load_image_folder(tmp_path / "p"), quantize_uint8(want))
    with pytest.raises(ValueError, match="exceeds"):
        write_png_samples(p2p, Spec(), str(tmp_path / "p2"), len(test) + 1)

    pts = build_model("wgan-gp", load_data("ring8").info)
    with pytest.raises(ValueError, match="points"):
        write_png_samples(pts, None, str(tmp_path / "x"), 2)


# ---- export / load_generator ----------------------------------------------------------------------


def test_export_and_load_generator_round_trip(run, tmp_path, capsys):
    out = tmp_path / "G.safetensors"
    assert main(["export", run, "--out", str(out)]) == 0
    assert "(ema weights)" in capsys.readouterr().out
    with open(out, "rb") as f:  # safetensors: an 8-byte header length, then JSON; no pickle opcodes
        n = int.from_bytes(f.read(8), "little")
        header = json.loads(f.read(n))
    meta = header["__metadata__"]
    assert meta["format"] == "pygan-generator-1" and meta["weights"] == "ema" and meta["step"] == "4"
    assert json.loads(meta["networks"]) == ["generator"]
    assert all(k.startswith("generator.") for k in header if k != "__metadata__")
    g = pygan.load_generator(str(out))
    assert g.critic is None and not any(p.requires_grad for p in g.parameters())
    assert g.weights == "ema" and g.trained_steps == 4 and not g.training
    ref, _, _ = load_run(run)
    a = g.sample(6, generator=torch.Generator().manual_seed(1))
    b = ref.sample(6, generator=torch.Generator().manual_seed(1))
    assert torch.equal(a, b)
    main(["export", run, "--out", str(tmp_path / "raw.safetensors"), "--no-ema"])
    raw = load_generator(str(tmp_path / "raw.safetensors"))
    assert raw.weights == "raw"
    want = load_run(run, ema=False)[0].state_dict()
    for k, v in raw.state_dict().items():
        if k.startswith("generator."):
            assert torch.equal(v, want[k]), k


@pytest.mark.parametrize("name", sorted(TINY))
def test_every_model_exports_and_samples_the_same(name, tmp_path):
    spec, overrides = TINY[name]
    data = load_data(spec)
    torch.manual_seed(0)
    model = build_model(name, data.info, overrides).eval()
    run_config = {"model": name, "model_config": json.loads(json.dumps(vars(model.config))),
                  "data": {"spec": spec, "spec_b": None}, "data_info": data.info.to_json()}  # fmt: skip
    path = export_model(model, run_config, str(tmp_path / "g.safetensors"), step=7)
    g = load_generator(path)
    assert g.trained_steps == 7
    batch = load_data(spec, "test").fixed(4) if data.info.kind == "paired" else None
    kw = {"batch": batch} if batch is not None else {}
    a = g.sample(4, generator=torch.Generator().manual_seed(0), **kw)
    b = model.sample(4, generator=torch.Generator().manual_seed(0), **kw)
    for x, y in zip(a if isinstance(a, tuple) else [a], b if isinstance(b, tuple) else [b]):
        assert torch.equal(x, y)
    critics = ("critic.", "discriminator.", "discriminators.", "z_discriminator.", "acl.code_discriminator.")
    assert not any(k.startswith(critics) for k in g.state_dict())  # removed, not left untrained


def test_export_errors(run, tmp_path, capsys):
    assert main(["export", run, "--out", str(tmp_path / "g.pt")]) == 2  # bad input
    assert "must name a .safetensors file" in capsys.readouterr().err
    with pytest.raises(FileNotFoundError):
        load_generator(str(tmp_path / "missing.safetensors"))
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x00" * 16)
    with pytest.raises(ValueError, match="not a readable safetensors"):
        load_generator(str(bad))
    from safetensors.torch import save_file

    save_file({"a": torch.zeros(1)}, str(tmp_path / "other.safetensors"), metadata={"format": "x"})
    with pytest.raises(ValueError, match="not a pygan generator"):
        load_generator(str(tmp_path / "other.safetensors"))


def test_checkpoint_is_not_needed_after_export(run, tmp_path):
    out = tmp_path / "G.safetensors"
    main(["export", run, "--out", str(out)])
    ckpt = run_paths(run)["last"]
    os.rename(ckpt, ckpt + ".away")
    try:
        g = load_generator(str(out))
        assert np.isfinite(g.sample(2).numpy()).all()
    finally:
        os.rename(ckpt + ".away", ckpt)
