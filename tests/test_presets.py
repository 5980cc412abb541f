"""Model presets (``--preset``, ``preset:`` in config files, :func:`pygan.models.preset_overrides`)
and ``pygan bench``'s quick and estimated runs."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import time
import typing

import pytest

from pygan.cli import main
from pygan.errors import ConfigError
from pygan.models import (
    MODELS,
    Model,
    _fits_type,
    check_presets,
    get_model,
    list_models,
    list_presets,
    preset_overrides,
    register,
)
from pygan.runs import load_checkpoint, run_paths
from pygan.train import train

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# The fields a small preset may set: the ones that size the compute of a step (channel widths, latent
# and hidden sizes, batch), plus scogan's loss ("ns": one discriminator step per iteration instead of
# WGAN-GP's five, the setting docs/experiments/scogan.md trained with).
COMPUTE_FIELDS = {
    "width",
    "d_width",
    "g_width",
    "enc_width",
    "z_dim",
    "acl_hidden",
    "ae_hidden",
    "batch_size",
}
OTHER_ALLOWED = {"scogan": {"loss": "ns"}}
# Small presets whose batch is larger than the paper's: ED//GAN's pix2pix adaptation trains at
# batch 1 in the paper; its experiment used 16 rows of 16-channel U-Nets (64 channels in the paper).
LARGER_BATCH = {"edgan-pix2pix", "edgan-pix2pix-coupled"}

TRAIN_FLAGS = [
    "--no-progress",
    "--no-tensorboard",
    "--threads",
    "1",
    "--sample-every",
    "0",
    "--n-samples",
    "4",
]


def _config(run) -> dict:
    with open(run_paths(str(run))["config"]) as f:
        return json.load(f)


# ---- the presets themselves -------------------------------------------------------------------------


def test_every_model_declares_paper_and_small():
    assert len(list_models()) == 23
    for name in list_models():
        cls = get_model(name)
        assert "PRESETS" in cls.__dict__, f"{name} inherits its presets instead of declaring them"
        presets = list_presets(name)
        assert presets["paper"] == {}, name
        assert presets.get("small"), name
        check_presets(cls, name)  # what @register ran


def test_presets_are_valid_config_overrides():
    for name in list_models():
        cls = get_model(name)
        hints = typing.get_type_hints(cls.Config)
        fields = {f.name for f in dataclasses.fields(cls.Config)}
        for preset, values in list_presets(name).items():
            for key, value in values.items():
                assert key in fields, (name, preset, key)
                assert _fits_type(value, hints[key]), (name, preset, key, value, hints[key])
            config = cls.Config(**values)
            for key, value in values.items():
                assert getattr(config, key) == value


def test_small_is_smaller_in_the_compute_fields():
    for name in list_models():
        cls = get_model(name)
        defaults = {f.name: f.default for f in dataclasses.fields(cls.Config)}
        small = preset_overrides(name, "small")
        other = {k: v for k, v in small.items() if k not in COMPUTE_FIELDS}
        assert other == OTHER_ALLOWED.get(name, {}), name
        smaller = []
        for key in set(small) & COMPUTE_FIELDS:
            if defaults[key] is None:  # resolved from the data (e.g. cogan's d_width: 20 for digits)
                continue
            if key == "batch_size" and name in LARGER_BATCH:
                assert small[key] > defaults[key]
                continue
            assert small[key] <= defaults[key], (name, key)
            smaller.append(small[key] < defaults[key])
        assert any(smaller), f"{name}: small is not smaller than paper in any compute field"


@pytest.mark.parametrize("name", ["cogan", "edgan-pix2pix", "uuvae-gan", "acl-gan-gp"])
def test_small_builds_fewer_parameters(name):
    from pygan.data import load_data
    from pygan.models import build_model

    spec = {"cogan": "digits16-edge", "acl-gan-gp": "digits16"}.get(
        name, "photo-blur16?sources=sklearn&limit=8"
    )
    info = load_data(spec, "train").info
    count = {
        preset: sum(p.numel() for p in build_model(name, info, preset_overrides(name, preset)).parameters())
        for preset in ("paper", "small")
    }
    assert count["small"] < 0.6 * count["paper"], count


def test_preset_overrides_is_a_copy_and_unknown_names_fail():
    small = preset_overrides("vae", "small")
    assert small == {"width": 32, "z_dim": 32}
    small["width"] = 1
    assert preset_overrides("vae", "small")["width"] == 32
    with pytest.raises(ConfigError) as e:
        preset_overrides("vae", "tiny")
    msg = str(e.value)
    assert "\n" not in msg and "'tiny'" in msg and "['paper', 'small']" in msg and "vae" in msg
    import pygan.train

    assert pygan.train.preset_overrides is preset_overrides


def _fake_model(presets):
    @dataclasses.dataclass
    class Cfg:
        batch_size: int = 8
        lr: float = 1e-3
        betas: tuple[float, float] = (0.5, 0.9)
        mode: str | None = None

    return type("Fake", (Model,), {"Config": Cfg, "PRESETS": presets})


@pytest.mark.parametrize(
    "presets, words",
    [
        ({"small": {"batch_size": 2}}, "empty 'paper'"),
        ({"paper": {"lr": 0.1}}, "empty 'paper'"),
        ({"paper": {}, "small": {"depth": 2}}, "'depth', not a field"),
        ({"paper": {}, "small": {"batch_size": 2.0}}, "'batch_size'] = 2.0"),
        ({"paper": {}, "small": {"batch_size": True}}, "'batch_size'] = True"),
        ({"paper": {}, "small": {"lr": 1}}, "'lr'] = 1"),
        ({"paper": {}, "small": {"betas": (0.5,)}}, "'betas']"),
        ({"paper": {}, "small": {"betas": [0.5, 0.9]}}, "'betas']"),
        ({"paper": {}, "small": {"mode": 3}}, "'mode'] = 3"),
        ({"paper": {}, "small": {"batch_size": 0}}, "PRESETS['small']: batch_size must be an int >= 1"),
        ({"paper": {}, "small": {"lr": -1.0}}, "lr must be a finite number > 0"),
        ({"paper": {}, "small": ["batch_size"]}, "must be a dict of Config fields"),
        ([("paper", {})], "must be a dict"),
    ],
)
def test_registration_checks_presets(presets, words):
    before = dict(MODELS)
    with pytest.raises(TypeError, match="fake-preset-test") as e:
        register("fake-preset-test")(_fake_model(presets))
    assert words in str(e.value)
    assert MODELS == before  # nothing registered


def test_registration_accepts_typed_presets():
    cls = _fake_model({"paper": {}, "small": {"batch_size": 2, "betas": (0.0, 0.9), "mode": None}})
    check_presets(cls, "fake")  # no error
    assert Model.PRESETS == {"paper": {}}  # a model that declares none gets only the defaults


# ---- pygan train --preset ---------------------------------------------------------------------------


def test_train_with_preset_then_set_records_it(tmp_path):
    run = tmp_path / "r"
    argv = ["train", "vae", "--data", "digits16", "--steps", "2", "--out", str(run), "--preset", "small"]
    assert main([*argv, "--set", "width=16", *TRAIN_FLAGS]) == 0
    cfg = _config(run)
    assert cfg["preset"] == "small"
    # --set applies after the preset; the preset's other keys stay; the rest are the defaults
    assert cfg["model_config"]["width"] == 16 and cfg["model_config"]["z_dim"] == 32
    assert cfg["model_config"]["batch_size"] == 64
    assert load_checkpoint(run_paths(str(run))["last"])["step"] == 2


def test_resume_with_or_without_repeating_the_preset(tmp_path, capsys):
    run = str(tmp_path / "r")
    base = ["train", "vae", "--data", "digits16", "--out", run, *TRAIN_FLAGS, "--set", "batch_size=8"]
    assert main([*base, "--steps", "2", "--preset", "small"]) == 0
    assert main([*base, "--steps", "3", "--resume"]) == 0  # without --preset
    assert main([*base, "--steps", "4", "--resume", "--preset", "small"]) == 0  # repeated
    assert load_checkpoint(run_paths(run)["last"])["step"] == 4
    capsys.readouterr()
    # a different preset names each setting it would change, with both values
    assert main([*base, "--steps", "5", "--resume", "--preset", "paper"]) != 0
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert "--preset paper" in err and "'small'" in err
    assert "width=32 (run) vs 64" in err and "z_dim=32 (run) vs 128" in err and "batch_size" not in err
    assert load_checkpoint(run_paths(run)["last"])["step"] == 4
    assert _config(run)["preset"] == "small"


def test_unknown_preset_is_one_line_naming_the_choices(tmp_path, capsys):
    out = tmp_path / "r"
    rc = main(["train", "cogan", "--steps", "1", "--out", str(out), "--preset", "tiny", *TRAIN_FLAGS])
    err = capsys.readouterr().err.strip()
    assert rc == 2  # bad input: ConfigError
    assert err == (
        "pygan train: error: --preset tiny: model cogan has no preset 'tiny'; choose from ['paper', 'small']"
    )
    assert not out.exists()


def test_config_file_preset_layers(tmp_path):
    cfg = tmp_path / "c.json"
    cfg.write_text(
        json.dumps(
            {
                "model": "vae",
                "preset": "small",
                "model_config": {"z_dim": 8, "batch_size": 8},
                "data": "digits16",
                "train": {"steps": 1},
            }
        )
    )
    # file: preset under model_config
    assert main(["train", "--config", str(cfg), "--out", str(tmp_path / "a"), *TRAIN_FLAGS]) == 0
    a = _config(tmp_path / "a")
    assert a["preset"] == "small"
    assert (a["model_config"]["width"], a["model_config"]["z_dim"]) == (32, 8)
    # --preset on the command line replaces the file's; --set is over everything
    argv = ["train", "--config", str(cfg), "--out", str(tmp_path / "b"), "--preset", "paper"]
    assert main([*argv, "--set", "z_dim=4", *TRAIN_FLAGS]) == 0
    b = _config(tmp_path / "b")
    assert b["preset"] == "paper"
    assert (b["model_config"]["width"], b["model_config"]["z_dim"]) == (64, 4)
    # a run's config.json replays it, preset included
    argv = ["train", "--config", run_paths(str(tmp_path / "a"))["config"], "--out", str(tmp_path / "c")]
    assert main([*argv, *TRAIN_FLAGS]) == 0
    c = _config(tmp_path / "c")
    assert c["preset"] == "small" and c["model_config"] == a["model_config"]


@pytest.mark.parametrize(
    "preset, words", [("tiny", "has no preset 'tiny'; choose from ['paper', 'small']"), (3, "a string")]
)
def test_config_file_bad_preset(tmp_path, capsys, preset, words):
    cfg = tmp_path / "c.json"
    cfg.write_text(json.dumps({"model": "vae", "preset": preset, "train": {"steps": 1}}))
    assert main(["train", "--config", str(cfg), "--out", str(tmp_path / "r"), *TRAIN_FLAGS]) != 0
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(cfg) in err and words in err


def test_library_train_records_the_preset(tmp_path):
    run = str(tmp_path / "r")
    opts = {"progress": False, "tensorboard": False, "sample_every": 0, "n_samples": 4}
    train("vae", "digits16", run, 1, preset="small", overrides=["batch_size=8"], **opts)
    cfg = _config(run)
    assert cfg["preset"] == "small" and cfg["model_config"]["z_dim"] == 32
    assert cfg["model_config"]["batch_size"] == 8
    run2 = str(tmp_path / "r2")
    train("vae", "digits16", run2, 1, overrides=preset_overrides("vae", "small"), **opts)
    assert _config(run2)["preset"] is None and _config(run2)["model_config"]["z_dim"] == 32


def test_list_and_help_show_presets(capsys):
    assert main(["list", "models"]) == 0
    out = capsys.readouterr().out
    assert "      presets (--preset): paper (the defaults); small: g_width=64 d_width=10 batch_size=32" in out
    assert out.count("presets (--preset): paper (the defaults); small: ") == 23
    with pytest.raises(SystemExit):
        main(["train", "scogan", "--help"])
    out = capsys.readouterr().out
    assert (
        "scogan presets (--preset NAME; --set applies after it): paper (the defaults); small: loss=ns "
        "g_width=64 d_width=10 batch_size=32 enc_width=16"
    ) in out
    assert "--preset NAME" in out


# ---- pygan bench ------------------------------------------------------------------------------------


def _stream(cmd, timeout):
    """Runs ``cmd``, returning ``[(line, still_running)]`` for its stdout lines, and its stderr."""
    env = {**os.environ, "PYTHONPATH": ROOT}
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines, t0 = [], time.monotonic()
    for line in proc.stdout:
        lines.append((line.rstrip("\n"), proc.poll() is None))
        assert time.monotonic() - t0 < timeout, f"over {timeout} s: {lines[-5:]}"
    err = proc.stderr.read()
    assert proc.wait(timeout=timeout) == 0, err[-2000:]
    return lines, err


def test_bench_quick_subset_streams_rows_without_profiler_noise():
    # the subset path of `pygan bench --quick` (the whole quick run took 16-38 s on the 2-core machine
    # at load average 10; its manual check is in docs/training.md)
    cmd = [sys.executable, "-m", "pygan", "bench", "--quick", "--only", "train", "--models", "vae,acl-ae"]
    lines, err = _stream(cmd, timeout=120)
    text = [line for line, _ in lines]
    assert text[0].startswith("pygan bench --quick:")
    assert any(
        t.startswith("# plan: 2 model(s) x 2 variants (eager x fused/reference) x 5 steps") for t in text
    )
    rows = [(t.split()[:2], running) for t, running in lines if t.split()[:1] in (["vae"], ["acl-ae"])]
    assert [r[0] for r in rows] == [
        ["vae", "fused/eager"],
        ["vae", "reference/eager"],
        ["acl-ae", "fused/eager"],
        ["acl-ae", "reference/eager"],
    ]
    assert rows[0][1], "the first model's rows came only when the run ended"
    assert "threads 1" in text[2]
    assert text[-1].startswith("pygan bench: done in ")
    for noise in ("SyncActivityProfilerHandler", "profiler_start", "Memory block of unknown size"):
        assert noise not in err
    res = json.load(open(os.path.join(ROOT, "bench", "results", "train_step-cpu-quick.json")))
    assert res["preset"] == "small" and {r["model"] for r in res["results"]} == {"vae", "acl-ae"}
    vae = next(r for r in res["results"] if r["model"] == "vae")
    assert (vae["config"]["width"], vae["config"]["z_dim"], vae["reps"]) == (32, 32, 3)


def test_bench_full_run_estimates_first(tmp_path):
    out = tmp_path / "b.json"
    cmd = [sys.executable, os.path.join(ROOT, "bench", "train_step.py"), "--models", "vae,acl-ae"]
    cmd += ["--preset", "small", "--no-compile", "--reps", "1", "--warmup", "0", "--threads", "1"]
    lines, _ = _stream([*cmd, "--out", str(out)], timeout=120)
    text = [line for line, _ in lines]
    est = next(i for i, t in enumerate(text) if t.startswith("# estimate: about "))
    first_row = next(i for i, t in enumerate(text) if t.startswith("vae "))
    assert est < first_row
    assert "x 2 variants x 2 steps" in text[est]
    assert any(t.startswith("# vae: ") and "about" in t and "to go" in t for t in text)
    assert len(json.loads(out.read_text())["results"]) == 4


def test_ops_quick_has_no_compile_candidate(tmp_path):
    out = tmp_path / "o.json"
    cmd = [sys.executable, os.path.join(ROOT, "bench", "ops.py"), "--quick", "--op", "residual_add"]
    lines, _ = _stream([*cmd, "--out", str(out)], timeout=120)
    res = json.loads(out.read_text())
    assert res["sizes"] == "model"
    candidates = {r["candidate"] for r in res["rows"]}
    assert "eager" in candidates and "compile" not in candidates and candidates <= {"eager", "cpp"}
    assert any("residual_add" in t and "eager" in t for t, _ in lines)
