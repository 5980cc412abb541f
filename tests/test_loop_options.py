"""Loop options of issue 15: TensorBoard sample grids (and one line when tensorboard is missing), and
``--deterministic``."""

from __future__ import annotations

import builtins
import json
import os

import numpy as np
import pytest
import torch

from pygan.cli import main
from pygan.graphs import EagerStep
from pygan.runs import run_paths
from pygan.train import TENSORBOARD_MISSING, train

_SET = ["batch_size=8", "width=8", "n_critic=2"]


def _train(out, steps=4, **kw):
    kw.setdefault("progress", False)
    return train("wgan-gp", "digits16", str(out), steps, overrides=_SET, **kw)


def test_sample_grids_go_to_tensorboard(tmp_path, one_thread):
    pytest.importorskip("tensorboard")
    from PIL import Image
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    _train(tmp_path / "r", 4, sample_every=2, n_samples=8, log_every=1)
    acc = EventAccumulator(run_paths(str(tmp_path / "r"))["tb"], size_guidance={"images": 0})
    acc.Reload()
    assert "samples" in acc.Tags()["images"]
    events = acc.Images("samples")
    assert [e.step for e in events] == [2, 4]
    import io

    last = np.asarray(Image.open(io.BytesIO(events[-1].encoded_image_string)).convert("RGB"))
    on_disk = np.asarray(
        Image.open(os.path.join(run_paths(str(tmp_path / "r"))["samples"], "last.png")).convert("RGB")
    )
    assert np.array_equal(last, on_disk)  # the grid on disk, pixel for pixel
    assert "loss_d" in acc.Tags()["scalars"]


def test_missing_tensorboard_is_one_line_saying_how_to_install(tmp_path, monkeypatch, capsys, one_thread):
    real_import = builtins.__import__

    def no_tb(name, *args, **kw):
        if name.startswith("torch.utils.tensorboard") or name == "tensorboard":
            raise ImportError("No module named 'tensorboard'")
        return real_import(name, *args, **kw)

    monkeypatch.setattr(builtins, "__import__", no_tb)
    _train(tmp_path / "r", 2, sample_every=1)
    err = capsys.readouterr().err
    assert err.count(TENSORBOARD_MISSING) == 1 and "pip install tensorboard" in TENSORBOARD_MISSING
    assert not os.path.isdir(run_paths(str(tmp_path / "r"))["tb"])
    _train(tmp_path / "q", 2, sample_every=1, tensorboard=False)  # --no-tensorboard: silence
    assert TENSORBOARD_MISSING not in capsys.readouterr().err


def test_deterministic_switches_torch_to_deterministic_algorithms_and_back(tmp_path, monkeypatch, one_thread):
    seen = []
    original = EagerStep.__call__

    def spy(self, batch, iteration):
        seen.append((torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.deterministic,
                     torch.backends.cudnn.benchmark, os.environ.get("CUBLAS_WORKSPACE_CONFIG")))  # fmt: skip
        return original(self, batch, iteration)

    monkeypatch.setattr(EagerStep, "__call__", spy)
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    before = (torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.deterministic)
    _train(tmp_path / "d", 2, deterministic=True, sample_every=0, tensorboard=False)
    assert seen == [(True, True, False, ":4096:8")] * 2
    assert (torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.deterministic) == before
    seen.clear()
    _train(tmp_path / "n", 2, sample_every=0, tensorboard=False)
    assert seen[0][0] is before[0]
    cfg = json.load(open(run_paths(str(tmp_path / "d"))["config"]))
    assert cfg["train"]["deterministic"] is True


def test_deterministic_flag_on_the_command_line(tmp_path, one_thread):
    rc = main(["train", "wgan-gp", "--data", "ring8", "--steps", "1", "--out", str(tmp_path / "r"),
               "--set", "mlp_hidden=8", "--set", "batch_size=8", "--no-progress", "--no-tensorboard",
               "--deterministic"])  # fmt: skip
    assert rc == 0
    assert json.load(open(run_paths(str(tmp_path / "r"))["config"]))["train"]["deterministic"] is True
