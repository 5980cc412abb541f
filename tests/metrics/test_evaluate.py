"""evaluate_run / select_metrics against fake runs (the real loader, pygan.runs.load_run, is
written elsewhere; evaluate_run only relies on the documented contract)."""

import json
import math

import pytest
import torch

from pygan.data import load_digits
from pygan.evaluate import compare_runs_nrds, evaluate_run, select_metrics


class PointModel:
    """Samples exactly at the first `k` of 8 ring centres (cycling), plus tiny noise."""

    def __init__(self, centres, k):
        self.centres, self.k = centres, k

    def sample(self, n, generator=None):
        idx = torch.arange(n) % self.k
        return self.centres[idx] + 1e-3 * torch.randn(n, 2, generator=generator, dtype=self.centres.dtype)


class DigitsModel:
    """'Generates' real test digits (so FID is that of the test set against itself), reconstructs
    perfectly."""

    def __init__(self, rgb=False):
        self.x, _ = load_digits(32, "test")
        if rgb:
            self.x = self.x.expand(-1, 3, -1, -1)
        self.evaluated = False

    def eval(self):
        self.evaluated = True

    def sample(self, n, generator=None):
        idx = torch.randint(0, len(self.x), (n,), generator=generator)
        return self.x[idx]

    def reconstruct(self, x):
        return x.clone()


class CoupledModel:
    """Pairs (digit, negative digit) of the same z."""

    def __init__(self):
        self.x, _ = load_digits(32, "test")

    def sample(self, n, generator=None):
        idx = torch.randint(0, len(self.x), (n,), generator=generator)
        return self.x[idx], -self.x[idx]


def ring():
    a = torch.arange(8, dtype=torch.float64) * (2 * math.pi / 8)
    return torch.stack([2 * torch.cos(a), 2 * torch.sin(a)], 1)


def loader_for(model, data, config=None):
    def load(run_dir):
        return model, config or {"model": "fake"}, data

    return load


def test_points_run_mode_coverage_and_metrics_json(tmp_path):
    data = {"name": "ring8", "centres": ring(), "std": 0.02}
    out = evaluate_run(tmp_path, loader=loader_for(PointModel(ring(), 5), data), n_samples=800)
    assert out["kind"] == "points"
    mc = out["metrics"]["mode_coverage"]
    assert mc["modes_covered"] == 5 and mc["num_modes"] == 8
    assert mc["high_quality_fraction"] == 1.0 and mc["counts"][5:] == [0] * 3 and sum(mc["counts"]) == 800
    assert min(mc["counts"][:5]) > 150
    assert out["config"] == {"model": "fake"}
    on_disk = json.loads((tmp_path / "metrics.json").read_text())
    assert on_disk == json.loads(json.dumps(out))
    # Without centres the metric is skipped, with the reason.
    plan = select_metrics(PointModel(ring(), 8), {}, {"name": "ring8"})
    assert plan["run"] == [] and "centres" in plan["skipped"]["mode_coverage"]


def test_digits_run_fid_kid_reconstruction(tmp_path):
    model = DigitsModel()
    out = evaluate_run(tmp_path, loader=loader_for(model, {"name": "digits"}), n_samples=400, kid_subsets=5)
    assert model.evaluated
    m = out["metrics"]
    assert set(m) == {
        "fid",
        "kid",
        "inception_score",
        "precision_recall",
        "density_coverage",
        "reconstruction",
    }
    assert out["skipped"] == {"translation": "the model has no translate(x)"}
    assert out["weights"] == "raw"  # a loader without EMA weights
    # Samples are drawn from the real test set: FID/KID small compared with noise.
    noise = evaluate_run(
        tmp_path,
        loader=loader_for(_Noise(), {"name": "digits"}),
        n_samples=400,
        metrics=["fid", "kid"],
        kid_subsets=5,
        write=False,
    )["metrics"]
    assert m["fid"]["value"] < 0.1 * noise["fid"]["value"] and m["fid"]["extractor"] == "digits"
    # KID is unbiased, so it can be negative for equal distributions; noise is ~100x farther.
    assert abs(m["kid"]["mean"]) < 0.05 * noise["kid"]["mean"]
    rec = m["reconstruction"]
    assert rec["mse"] == 0.0 and rec["psnr"] == "inf" and rec["ssim"] == pytest.approx(1.0)
    assert rec["lpips_style"] == pytest.approx(0.0, abs=1e-6) and rec["data_range"] == 2.0
    # metrics= restricts what runs; the json on disk is the first call's.
    assert json.loads((tmp_path / "metrics.json").read_text())["metrics"]["fid"] == m["fid"]
    # real digits as samples: the classifier is confident and sees all classes (IS near its max of 10),
    # the samples lie on the real manifold (precision, recall, coverage high); noise is nowhere near.
    noise_q = evaluate_run(
        tmp_path,
        loader=loader_for(_Noise(), {"name": "digits"}),
        n_samples=400,
        metrics="is,pr,dc",
        write=False,
    )["metrics"]
    assert m["inception_score"]["mean"] > 7 and m["inception_score"]["classifier"] == "digits"
    assert noise_q["inception_score"]["mean"] < 0.5 * m["inception_score"]["mean"]
    assert m["precision_recall"]["precision"] > 0.9 and m["precision_recall"]["recall"] > 0.9
    assert noise_q["precision_recall"]["precision"] < 0.1 and m["precision_recall"]["k"] == 3
    assert m["density_coverage"]["coverage"] > 0.9 and noise_q["density_coverage"]["coverage"] < 0.1
    assert m["fid"]["quantize"] == "float"  # the digits extractor's default


class _Noise:
    def sample(self, n, generator=None):
        return torch.rand(n, 1, 32, 32, generator=generator) * 2 - 1


def test_image_run_without_extractor_is_skipped_with_instructions(monkeypatch, tmp_path):
    monkeypatch.delenv("PYGAN_INCEPTION_WEIGHTS", raising=False)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))  # no pytorch-fid weights in this hub cache
    plan = select_metrics(_Noise(), {}, {"name": "faces", "real": torch.zeros(4, 1, 32, 32)})
    assert plan["kind"] == "images" and "fid" not in plan["run"]
    assert "inception_weights" in plan["skipped"]["fid"]
    plan2 = select_metrics(_Noise(), {}, {"name": "faces"})
    assert plan2["skipped"]["fid"] == "no real samples in the data spec"
    # A local Inception weights file makes FID/KID applicable (the file is only opened when computing).
    plan_inc = select_metrics(_Noise(), {}, {"real": torch.zeros(4, 1, 32, 32)}, inception_weights="/w.pth")
    assert {"fid", "kid"} <= set(plan_inc["run"])
    # An explicit extractor makes FID applicable.
    plan3 = select_metrics(_Noise(), {}, {"real": torch.zeros(4, 1, 32, 32)}, extractor=torch.nn.Flatten())
    assert {"fid", "kid"} <= set(plan3["run"])


def test_translation_run(tmp_path):
    x, _ = load_digits(32, "test")

    class Translator:
        def sample(self, n, generator=None):
            return x[:n]

        def translate(self, inp):
            return -inp

    data = {"name": "digits2neg", "kind": "images", "pairs": (x[:64], -x[:64] + 0.1)}
    out = evaluate_run(tmp_path, loader=loader_for(Translator(), data), n_samples=16, metrics=["translation"])
    t = out["metrics"]["translation"]
    assert t["mse"] == pytest.approx(0.01, rel=1e-5)
    assert t["psnr"] == pytest.approx(10 * math.log10(4 / 0.01), rel=1e-5)


def test_coupled_run_agreement_and_per_domain_fid(tmp_path):
    x, _ = load_digits(32, "all")
    neg = {"name": "negative", "real": -x[:500], "undo": lambda t: -t}
    plain = {"name": "digits", "real": x[:500]}
    out = evaluate_run(
        tmp_path,
        loader=loader_for(CoupledModel(), {"name": "digits", "domains": [plain, neg]}),
        n_samples=300,
    )
    assert out["kind"] == "coupled"
    assert out["metrics"]["semantic_agreement"]["agreement"] == 1.0
    fids = out["metrics"]["fid_per_domain"]
    assert set(fids) == {"digits", "negative"}
    assert fids["digits"] == pytest.approx(fids["negative"], rel=1e-4)  # undo makes them the same problem
    plan = select_metrics(CoupledModel(), {}, {"name": "mnist2edge"})
    assert "semantic_agreement" in plan["skipped"]


def test_compare_runs_nrds(tmp_path):
    runs = {"good": DigitsModel(), "noise": _Noise()}

    def load(run_dir):
        name = run_dir.rsplit("/", 1)[-1]
        return runs[name], {}, {"name": "digits"}

    r = compare_runs_nrds(
        [str(tmp_path / "good"), str(tmp_path / "noise")],
        loader=load,
        real=load_digits(32, "train")[0][:64],
        n_samples=64,
        epochs=2,
        batch_size=32,
        plot=tmp_path / "nrds.png",
    )
    assert r.scores["good"] > r.scores["noise"] and (tmp_path / "nrds.png").is_file()
    with pytest.raises(ValueError, match="at least 2"):
        compare_runs_nrds([str(tmp_path / "good")], loader=load)
