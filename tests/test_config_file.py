"""``pygan train --config FILE`` (JSON, YAML), replaying a run's config.json, the precedence of flags
and --set over the file, bad files, and ``pygan train MODEL --help`` listing the model's settings."""

from __future__ import annotations

import json
import os

import pytest
import torch

from pygan.cli import main
from pygan.models import config_field_docs, get_model, list_models
from pygan.runs import run_paths
from pygan.train import load_config_file


def _rows(run):
    with open(run_paths(str(run))["metrics"]) as f:
        return [{k: v for k, v in json.loads(x).items() if k not in ("time", "img_per_s")} for x in f]


def _cfg(run):
    with open(run_paths(str(run))["config"]) as f:
        return json.load(f)


_BASE = ["--data", "digits16", "--steps", "3", "--log-every", "1", "--sample-every", "0", "--no-progress",
         "--no-tensorboard", "--threads", "1", "--seed", "5"]  # fmt: skip
_SET = ["--set", "batch_size=8", "--set", "width=8", "--set", "n_critic=2", "--set", "betas=0.5,0.9"]


@pytest.fixture(autouse=True)
def _restore_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_replaying_a_runs_config_reproduces_its_losses(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    assert main(["train", "wgan-gp", *_BASE, *_SET, "--out", str(a)]) == 0
    assert main(["train", "--config", str(a / "config.json"), "--out", str(b), "--threads", "1"]) == 0
    assert _rows(a) == _rows(b) and len(_rows(a)) == 3
    ca, cb = _cfg(a), _cfg(b)
    assert (
        ca["model_config"] == cb["model_config"] and ca["train"] == cb["train"] and ca["data"] == cb["data"]
    )
    assert cb["model_config"]["betas"] == [0.5, 0.9] and cb["train"]["seed"] == 5


def test_flags_and_set_override_the_file(tmp_path):
    a = tmp_path / "a"
    main(["train", "wgan-gp", *_BASE, *_SET, "--out", str(a)])
    b = tmp_path / "b"
    assert main(["train", "wgan-gp", "--config", str(a / "config.json"), "--out", str(b), "--steps", "2",
                 "--seed", "0", "--set", "width=4", "--threads", "1"]) == 0  # fmt: skip
    cb = _cfg(b)
    assert cb["train"]["steps"] == 2 and cb["train"]["seed"] == 0  # given flags win
    assert cb["train"]["log_every"] == 1 and cb["train"]["sample_every"] == 0  # the file's, not the defaults
    assert cb["model_config"]["width"] == 4 and cb["model_config"]["n_critic"] == 2


def test_a_hand_written_json_and_yaml_file(tmp_path):
    cfg = {"model": "wgan-gp", "model_config": {"batch_size": 8, "width": 8, "n_critic": 2, "z_dim": None},
           "data": "digits16", "train": {"steps": 2, "log_every": 1, "sample_every": 0, "progress": False,
                                          "tensorboard": False}}  # fmt: skip
    (tmp_path / "c.json").write_text(json.dumps(cfg))
    assert (
        main(["train", "--config", str(tmp_path / "c.json"), "--out", str(tmp_path / "j"), "--threads", "1"])
        == 0
    )
    yaml = pytest.importorskip("yaml")
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    assert (
        main(["train", "--config", str(tmp_path / "c.yaml"), "--out", str(tmp_path / "y"), "--threads", "1"])
        == 0
    )
    assert _rows(tmp_path / "j") == _rows(tmp_path / "y")
    assert _cfg(tmp_path / "y")["model_config"]["width"] == 8


def test_yaml_without_pyyaml_says_what_to_install(tmp_path, monkeypatch, capsys):
    import builtins

    real_import = builtins.__import__

    def no_yaml(name, *a, **kw):
        if name == "yaml":
            raise ImportError("No module named 'yaml'")
        return real_import(name, *a, **kw)

    monkeypatch.setattr(builtins, "__import__", no_yaml)
    (tmp_path / "c.yml").write_text("model: wgan-gp\n")
    assert main(["train", "--config", str(tmp_path / "c.yml"), "--out", str(tmp_path / "r")]) == 1
    assert "pip install pyyaml" in capsys.readouterr().err


def _write(tmp_path, obj, name="c.json"):
    p = tmp_path / name
    p.write_text(json.dumps(obj) if not isinstance(obj, str) else obj)
    return str(p)


def test_bad_config_files(tmp_path, capsys):
    def err(argv, status=2):  # 2: bad input (a missing file: 1)
        rc = main(argv)
        e = capsys.readouterr().err.strip().splitlines()
        assert rc == status and len(e) == 1, e
        return e[0]

    out = ["--out", str(tmp_path / "r")]
    p = _write(tmp_path, {"model": "wgan-gp", "model_config": {"widht": 8}, "train": {"steps": 1}})
    e = err(["train", "--config", p, *out])
    assert "'widht'" in e and "'wgan-gp'" in e  # the key and the model
    p = _write(tmp_path, {"model": "dcgan", "train": {"steps": 1}})
    e = err(["train", "wgan-gp", "--config", p, *out])
    assert "'dcgan'" in e and "'wgan-gp'" in e  # both names
    p = _write(tmp_path, {"model": "wgan-gp", "train": {"steps": 1, "sample_evry": 3}})
    assert "'sample_evry'" in err(["train", "--config", p, *out])
    p = _write(tmp_path, {"model": "wgan-gp", "trian": {}})
    assert "'trian'" in err(["train", "--config", p, *out])
    p = _write(tmp_path, {"model": "wgan-gp", "model_config": {"width": "wide"}, "train": {"steps": 1}})
    assert "width" in err(["train", "--config", p, *out])
    p = _write(tmp_path, {"model": "wgan-gp", "model_config": {"betas": [0.5]}, "train": {"steps": 1}})
    assert "betas" in err(["train", "--config", p, *out])
    p = _write(tmp_path, {"model": "wgan-gp", "model_config": {"n_critic": 2.5}, "train": {"steps": 1}})
    assert "n_critic" in err(["train", "--config", p, *out])
    p = _write(tmp_path, "{not json")
    assert "not valid JSON" in err(["train", "--config", p, *out])
    p = _write(tmp_path, [1, 2])
    assert "mapping" in err(["train", "--config", p, *out])
    p = _write(tmp_path, {"model": "wgan-gp"})
    assert "--steps is required" in err(["train", "--config", p, *out])
    assert "name a MODEL" in err(["train", *out, "--steps", "1"])
    assert "not found" in err(["train", "--config", str(tmp_path / "none.json"), *out], status=1)
    assert not os.path.exists(tmp_path / "r")


def test_load_config_file_types(tmp_path):
    p = _write(tmp_path, {"model_config": {"betas": [0, 0.9], "z_dim": None, "lr": 1, "gp_kind": "r1"}})
    cfg = load_config_file(p, "wgan-gp")
    assert cfg["model_config"] == {"betas": (0.0, 0.9), "z_dim": None, "lr": 1.0, "gp_kind": "r1"}
    assert cfg["model"] == "wgan-gp" and cfg["train"] == {} and cfg["data"] is None


# ---- per-model --help -----------------------------------------------------------------------------


def test_train_model_help_lists_the_models_settings(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["train", "wgan-gp", "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "wgan-gp settings (--set key=value; WGANGPConfig):" in out
    for line in ("n_critic     int = 5", "gp_kind      str = 'wgan-gp'", "z_dim        int | None = None",
                 "ema_decay    float = 0.0"):  # fmt: skip
        assert line in out
    assert "latent size; None = 128 for images, 2 for points." in out  # the field's doc
    assert "generator EMA decay" in out
    # what each setting accepts, from the same declarations that validate it
    for text in ("gp_kind      str = 'wgan-gp'  [one of 'wgan-gp', 'one-sided' or 'r1']",
                 "critic_norm  str = 'none'  ['none' or 'layer']", "n_critic     int = 5  [an int >= 1]",
                 "z_dim        int | None = None  [an int >= 1 or None]"):  # fmt: skip
        assert text in out, text
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    assert "pygan train MODEL --help lists MODEL's settings" in capsys.readouterr().out


@pytest.mark.parametrize("name", sorted(list_models()))
def test_every_models_settings_are_listed(name, capsys):
    with pytest.raises(SystemExit):
        main(["train", name, "--help"])
    out = capsys.readouterr().out
    rows = config_field_docs(get_model(name).Config)
    for r in rows:
        assert f"  {r['name']} " in out
        assert "\n" not in r["doc"] and len(r["doc"]) <= 110
    for r in rows:  # every choice field lists its choices, every numeric field its range
        if r["choices"] is not None or r["range"] is not None:
            assert r["allowed"] and f"[{r['allowed']}]" in out, r
        if r["type"].split(" ")[0] in ("int", "float") or r["type"].startswith("tuple[float"):
            assert r["range"] is not None, r
    documented = sum(bool(r["doc"]) for r in rows)
    assert documented >= 3, f"{name}: only {documented} of {len(rows)} settings have a doc line"


def test_unknown_model_help(capsys):
    with pytest.raises(SystemExit):
        main(["train", "no-such-model", "--help"])
    assert "unknown model 'no-such-model'" in capsys.readouterr().out
