"""The pygan command: --help everywhere, list, train/sample/eval, bench, and its error messages."""

import json
import os
import subprocess
import sys

import pytest
import torch

import pygan.evaluate
from pygan.cli import build_parser, main
from pygan.runs import run_paths

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = ["--set", "width=4", "--set", "batch_size=4", "--set", "n_critic=2"]


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("cmd", [[], ["list"], ["train"], ["sample"], ["eval"], ["export"], ["bench"]])
def test_help_everywhere(cmd, capsys):
    with pytest.raises(SystemExit) as e:
        main([*cmd, "--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: pygan") and ("--steps" in out if cmd == ["train"] else True)


def test_python_m_pygan_help():
    r = subprocess.run([sys.executable, "-m", "pygan", "--help"], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0 and "train" in r.stdout and "bench" in r.stdout


def test_missing_command_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as e:
        main([])
    assert e.value.code == 2


def test_list(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "wgan-gp" in out and "n_critic = 5" in out and "betas = (0.0, 0.9)" in out
    assert "digits<N>" in out and "mnist:PATH" in out and "ring8" in out
    assert main(["list", "data"]) == 0 and "wgan-gp" not in capsys.readouterr().out


def test_train_sample_and_resume(tmp_path, capsys):
    run = str(tmp_path / "run")
    args = [
        "train",
        "wgan-gp",
        "--data",
        "digits16",
        "--steps",
        "2",
        "--out",
        run,
        *TINY,
        "--no-progress",
        "--no-tensorboard",
        "--log-every",
        "1",
    ]
    assert main(args) == 0
    assert "done:" in capsys.readouterr().out
    assert os.path.isfile(run_paths(run)["last"]) and os.path.isfile(run_paths(run)["samples"] + "/last.png")
    assert main([*args[:4], "--steps", "3", *args[6:], "--resume"]) == 0
    with open(run_paths(run)["metrics"]) as f:
        assert [json.loads(line)["step"] for line in f] == [1, 2, 3]
    out = str(tmp_path / "grid.png")
    assert main(["sample", run, "--n", "5", "--out", out, "--seed", "3", "--save-tensor"]) == 0
    assert os.path.isfile(out) and torch.load(str(tmp_path / "grid.pt")).shape == (5, 1, 16, 16)
    assert main(["sample", run, "--n", "4"]) == 0
    assert os.path.isfile(os.path.join(run, "samples", "sample_0.png"))


def test_train_errors_are_one_line(tmp_path, capsys):
    base = ["train", "wgan-gp", "--steps", "1", "--out", str(tmp_path / "r"), "--no-progress"]
    assert main([*base, "--data", "digits16", "--set", "width=wide"]) == 2  # bad input: ConfigError
    assert "error: --set width='wide': expected int" in capsys.readouterr().err
    assert main([*base, "--data", str(tmp_path / "missing")]) == 1  # a file that is not there
    err = capsys.readouterr().err
    assert "missing" in err and "neither a dataset name" in err
    assert main(["train", "nope", "--steps", "1", "--out", str(tmp_path / "n")]) == 2
    assert "unknown model 'nope'" in capsys.readouterr().err
    assert main([*base, "--data", "photo-gray16?sources=sklearn"]) == 2  # data the model cannot take
    assert "trains on images or points data, got paired" in capsys.readouterr().err
    assert main(["sample", str(tmp_path)]) == 1
    assert "not a pygan run directory" in capsys.readouterr().err


@pytest.fixture
def small_run(tmp_path):
    run = str(tmp_path / "run")
    main(
        [
            "train",
            "wgan-gp",
            "--data",
            "ring8",
            "--steps",
            "1",
            "--out",
            run,
            "--set",
            "mlp_hidden=8",
            "--set",
            "batch_size=8",
            "--no-progress",
            "--no-tensorboard",
        ]
    )
    return run


def test_eval_calls_evaluate_run_and_writes_metrics_json(small_run, monkeypatch, capsys):
    calls = []

    def evaluate_run(run_dir, *, write=True, **options):
        from pygan.runs import load_run

        assert write is False  # the CLI writes the result itself, once
        model, _, data = load_run(run_dir)
        calls.append((run_dir, options))
        return {"n": options.get("n", 0), "modes_total": len(data.info.meta["centers"]), "z_dim": model.z_dim}

    monkeypatch.setattr(pygan.evaluate, "evaluate_run", evaluate_run)
    assert main(["eval", small_run, "--option", "n=100", "--option", "name=x"]) == 0
    assert calls == [(small_run, {"n": 100, "name": "x"})]
    with open(run_paths(small_run)["eval"]) as f:
        assert json.load(f) == {"n": 100, "modes_total": 8, "z_dim": 2}
    assert '"modes_total": 8' in capsys.readouterr().out


def test_eval_out_does_not_write_the_run_metrics_json(small_run, tmp_path, capsys):
    out = str(tmp_path / "elsewhere.json")
    opts = ["--option", "n_samples=16", "--option", "batch_size=16"]
    assert main(["eval", small_run, "--out", out, *opts]) == 0
    assert not os.path.exists(run_paths(small_run)["eval"])
    with open(out) as f:
        assert json.load(f)["kind"] == "points"
    assert f"wrote {out}" in capsys.readouterr().err


def test_eval_rejects_a_non_run(tmp_path, capsys):
    assert main(["eval", str(tmp_path)]) == 1
    assert "not a pygan run directory" in capsys.readouterr().err


def test_tensorboard_scalars_when_installed(tmp_path):
    pytest.importorskip("tensorboard")
    run = str(tmp_path / "tb")
    main(
        [
            "train",
            "wgan-gp",
            "--data",
            "ring8",
            "--steps",
            "2",
            "--out",
            run,
            "--set",
            "mlp_hidden=8",
            "--set",
            "batch_size=8",
            "--no-progress",
            "--log-every",
            "1",
        ]
    )
    files = os.listdir(run_paths(run)["tb"])
    assert any(f.startswith("events.out.tfevents") for f in files)


def test_bench_train_step_smoke(tmp_path):
    out = tmp_path / "b.json"
    cmd = [
        sys.executable,
        os.path.join(ROOT, "bench", "train_step.py"),
        "--models",
        "wgan-gp",
        "--data",
        "ring8",
        "--set",
        "mlp_hidden=8",
        "--set",
        "batch_size=8",
        "--reps",
        "2",
        "--warmup",
        "1",
        "--no-compile",
        "--threads",
        "1",
        "--out",
        str(out),
    ]
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    res = json.loads(out.read_text())
    rows = {row["variant"]: row for row in res["results"]}
    assert set(rows) == {"fused/eager", "reference/eager"}
    for row in rows.values():
        assert row["img_per_s"] > 0 and row["images_per_step"] == 8 * 5 and row["peak_mem_mb"] > 0
    assert "reference/eager" in r.stdout and "img/s" in r.stdout


def test_bench_command_finds_the_scripts(monkeypatch):
    from pygan import cli

    assert cli._bench_dir() == os.path.join(ROOT, "bench")
    calls = []
    monkeypatch.setattr(cli.subprocess, "call", lambda cmd, cwd, env=None: calls.append(cmd) or 0)
    assert main(["bench", "--quick"]) == 0
    assert [os.path.basename(c[1]) for c in calls] == ["train_step.py", "ops.py"]
    assert "--quick" in calls[0] and "--quick" in calls[1]
    monkeypatch.setattr(cli, "_bench_dir", lambda: None)
    assert main(["bench"]) == 2


def test_parser_builds():
    p = build_parser()
    a = p.parse_args(["train", "wgan-gp", "--steps", "3", "--out", "x", "--set", "a=1", "--set", "b=2"])
    assert a.overrides == ["a=1", "b=2"] and a.data is None


def test_sample_an_image_to_image_run(tmp_path):
    from PIL import Image

    from tests import _models

    _models.install()
    try:
        run = str(tmp_path / "p")
        args = ["train", "test-paired", "--data", "photo-gray16?sources=sklearn", "--steps", "1"]
        assert main([*args, "--out", run, "--no-progress", "--no-tensorboard"]) == 0
        out = str(tmp_path / "s.png")
        assert main(["sample", run, "--n", "2", "--out", out]) == 0
        assert Image.open(out).size == (440, 80)  # one row of 2 x (input, output, target), 16+2 px x4
    finally:
        _models.uninstall()


def test_eval_end_to_end_with_the_real_metrics(small_run, tmp_path, capsys):
    """`pygan eval` on real runs: points -> mode coverage; digit images -> FID/KID (digits features)."""
    assert main(["eval", small_run, "--option", "n_samples=200"]) == 0
    with open(run_paths(small_run)["eval"]) as f:
        res = json.load(f)
    cov = res["metrics"]["mode_coverage"]
    assert res["kind"] == "points" and 0 <= cov["modes_covered"] <= 8
    assert res["config"]["mlp_hidden"] == 8
    run = str(tmp_path / "digits")
    args = ["train", "wgan-gp", "--data", "digits16", "--steps", "1", "--out", run, "--set", "width=8"]
    assert main([*args, "--no-progress", "--no-tensorboard"]) == 0
    assert main(["eval", run, "--option", "n_samples=64", "--option", "kid_subset_size=32"]) == 0
    with open(run_paths(run)["eval"]) as f:
        res = json.load(f)
    assert res["kind"] == "images" and res["metrics"]["fid"]["value"] > 0
    assert res["metrics"]["fid"]["num_real"] == 359 and "kid" in res["metrics"]
