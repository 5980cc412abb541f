"""Bad input never gets a traceback: every model Config field, every ``pygan`` flag and every eval
option is checked, and the CLI answers with exit code 2 and one stderr line naming what was wrong
(issue 16, item 4). Good edge values (the defaults, the tiny test configs, the experiment docs'
settings) are accepted. ``pygan eval`` says which metrics it skipped and why, and fails when it could
compute none (item 6). Everything runs in-process (``pygan.cli.main``): no training happens here except
one 1-step run on 2-D points for the eval tests."""

from __future__ import annotations

import dataclasses
import glob
import json
import math
import os
import re
import typing

import pytest

from pygan.cli import main
from pygan.errors import ConfigError
from pygan.models import FIELD_RULES, field_choices, field_rule, get_model, list_models, parse_overrides
from tests._tiny import all_cases

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _numeric_fields(config_cls) -> list[tuple[str, type]]:
    """``(name, type)`` of the int/float fields (also ``X | None`` and tuples of numbers)."""
    hints = typing.get_type_hints(config_cls)
    out = []
    for f in dataclasses.fields(config_cls):
        tp = hints[f.name]
        args = [a for a in typing.get_args(tp) if a is not type(None)] or [tp]
        inner = args[0]
        if typing.get_origin(inner) is tuple:
            inner = typing.get_args(inner)[0]
        if inner in (int, float):
            out.append((f.name, tp))
    return out


def _bad_values(config_cls, name: str, tp) -> list[str]:
    """``--set`` texts just outside the field's range (both ends when it has two)."""
    rule = field_rule(config_cls, name)
    assert rule is not None, f"{config_cls.__name__}.{name} has no range in FIELD_RULES"
    is_tuple = "tuple" in str(tp)
    out = []
    if rule.lo is not None:
        lo = rule.lo if rule.lo_open else rule.lo - (1 if rule.integer else 0.5)
        out.append(lo)
    if rule.hi is not None:
        out.append(rule.hi if rule.hi_open else rule.hi + 0.5)
    if not rule.integer:
        out.append(math.nan)
    texts = []
    for v in out:
        text = str(int(v)) if rule.integer else repr(float(v))
        if is_tuple:  # betas: one bad element, the other the default's
            default = next(f.default for f in dataclasses.fields(config_cls) if f.name == name)
            first = default[0] if default else 0.5
            text = f"{first},{text}"
        texts.append(text)
    return texts


def _generic_cases():
    for model in list_models():
        cls = get_model(model).Config
        for name, tp in _numeric_fields(cls):
            for text in _bad_values(cls, name, tp):
                yield pytest.param(model, name, text, id=f"{model}-{name}={text}")


def _one_error_line(capsys) -> str:
    cap = capsys.readouterr()
    lines = [line for line in cap.err.splitlines() if line.strip()]
    assert len(lines) == 1, cap.err
    assert "Traceback" not in cap.err and cap.out == ""
    return lines[0]


def _choice_fields(config_cls) -> list[tuple[str, tuple]]:
    """``(name, choices)`` of the ``Literal[...]`` fields (also ``Literal[...] | None``)."""
    hints = typing.get_type_hints(config_cls)
    return [(f.name, c) for f in dataclasses.fields(config_cls) if (c := field_choices(hints[f.name]))]


def _choice_cases():
    for model in list_models():
        for name, choices in _choice_fields(get_model(model).Config):
            yield pytest.param(model, name, choices, id=f"{model}-{name}")


def test_every_numeric_config_field_has_a_range(monkeypatch):
    import pygan.models

    # the built-in Configs declare every range in the field's metadata (knob), not in the fallback table
    monkeypatch.setattr(pygan.models, "FIELD_RULES", {})
    missing = [
        f"{m}: {get_model(m).Config.__name__}.{n}"
        for m in list_models()
        for n, tp in _numeric_fields(get_model(m).Config)
        if field_rule(get_model(m).Config, n) is None
    ]
    assert not missing, f"declare the range of these fields (pygan.models.knob): {missing}"
    monkeypatch.undo()
    assert all(r.describe() for r in FIELD_RULES.values())


def test_the_choice_fields_are_typed():
    """Every setting with a fixed set of values is a ``Literal`` (its choices are checked when the
    Config is built, listed by the errors and by --help)."""
    n = sum(len(_choice_fields(get_model(m).Config)) for m in list_models())
    assert n >= 40, n
    # the ones that stay free text: file paths, layer names, connection specs
    free = {
        (m, f.name)
        for m in list_models()
        for f in dataclasses.fields(get_model(m).Config)
        if typing.get_type_hints(get_model(m).Config)[f.name] in (str, str | None)
    }
    assert {name for _, name in free} <= {"connect", "sl_classifier", "pl_weights"}, free


@pytest.mark.parametrize(("model", "field", "choices"), list(_choice_cases()))
def test_a_config_choice_not_offered_is_exit_2_and_lists_the_choices(model, field, choices, tmp_path, capsys):
    out = tmp_path / "r"
    rc = main(["train", model, "--steps", "1", "--out", str(out), "--no-progress", "--set", f"{field}=bogus"])
    line = _one_error_line(capsys)
    assert rc == 2
    assert line.startswith("pygan train: error: ") and f"{field} must be " in line, line
    assert "got 'bogus'" in line and all(repr(c) in line for c in choices), line
    assert not out.exists()
    cls = get_model(model).Config
    with pytest.raises(ConfigError, match=rf"^{field} must be .*, got 'bogus' \({cls.__name__}\.{field}\)$"):
        cls(**{field: "bogus"})


@pytest.mark.parametrize(("model", "field", "text"), list(_generic_cases()))
def test_a_config_field_out_of_range_is_exit_2_and_one_line(model, field, text, tmp_path, capsys):
    out = tmp_path / "r"
    rc = main(
        ["train", model, "--steps", "1", "--out", str(out), "--no-progress", "--set", f"{field}={text}"]
    )
    line = _one_error_line(capsys)
    assert rc == 2
    assert line.startswith("pygan train: error: ") and f"{field} must be" in line and "got" in line
    assert not out.exists()  # nothing was written for a run that never started


def test_config_errors_name_field_value_and_range():
    cfg = get_model("wgan-gp").Config
    with pytest.raises(ConfigError) as e:
        cfg(width=-4)
    assert str(e.value) == "width must be an int >= 1, got -4 (WGANGPConfig.width)"
    with pytest.raises(
        ConfigError, match=r"betas must be .* in \[0, 1\).*, got \(0\.5, 1\.0\) \(WGANGPConfig\.betas\)"
    ):
        cfg(betas=(0.5, 1.0))
    with pytest.raises(ConfigError, match=r"gp_every must be an int >= 1 .*, got 0"):
        cfg(gp_every=0)
    with pytest.raises(ConfigError, match=r"lr must be a finite number > 0 .*, got inf"):
        cfg(lr=math.inf)
    with pytest.raises(ConfigError, match=r"width must be int, got '8' \(str; WGANGPConfig\.width\)"):
        cfg(width="8")
    with pytest.raises(ConfigError, match=r"g_batchnorm must be bool, got 1"):
        cfg(g_batchnorm=1)
    # the field's type picks the rule: dropout is a probability in ACL-AE, a count of levels in pix2pix
    with pytest.raises(ConfigError, match=r"dropout must be .*in \[0, 1\).*, got 1\.0"):
        get_model("acl-ae").Config(dropout=1.0)
    get_model("pix2pix").Config(dropout=5)
    with pytest.raises(ConfigError, match=r"dropout must be an int >= 0 .*, got -1"):
        get_model("pix2pix").Config(dropout=-1)
    # choices: the error lists them, in the CLI's style
    with pytest.raises(
        ConfigError,
        match=r"^critic_norm must be 'none' or 'layer', got 'batch' \(WGANGPConfig\.critic_norm\)$",
    ):
        cfg(critic_norm="batch")
    with pytest.raises(ConfigError, match=r"^init must be one of 'xavier', 'normal' or None, got 'he'"):
        get_model("cogan").Config(init="he")
    with pytest.raises(
        ConfigError, match=r"regularizers must be a tuple of names from 'fr', 'sl', 'cc', 'pl'"
    ):
        get_model("scogan").Config(regularizers=("fr", "xx"))
    # ConfigError is a ValueError: library callers that catch ValueError keep working
    assert issubclass(ConfigError, ValueError)


def test_configs_are_frozen_and_resolved_into_a_second_config():
    """A Config is immutable (change one with dataclasses.replace, which validates again); what a
    model derives from the data ("auto"/None fields) lives in ``model.resolved_config``, while
    ``model.config`` (what config.json records) stays what was asked for."""
    import torch

    from pygan.data.core import DataInfo
    from pygan.models import build_model, config_to_dict

    cfg = get_model("wgan-gp").Config()
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.width = 8
    with pytest.raises(ConfigError, match="width must be an int >= 1"):
        dataclasses.replace(cfg, width=0)
    with torch.device("meta"):
        m = build_model("cogan", DataInfo("two-domain", (1, 32, 32), shape_b=(1, 32, 32)), ["g_width=32"])
    assert (m.config.arch, m.config.n_critic, m.config.lr, m.config.init) == ("auto", None, None, None)
    r = m.resolved_config
    assert (r.arch, r.n_critic, r.lr, r.init, r.d_width, r.g_unshared) == ("digits", 1, 2e-4, "xavier", 20, 1)
    assert type(r) is type(m.config)
    assert config_to_dict(m.config)["arch"] == "auto" and config_to_dict(m.config)["lr"] is None
    m = build_model("wgan-gp", DataInfo("points", (2,)), ["mlp_hidden=8"])
    assert m.config.z_dim is None and m.resolved_config.z_dim == m.z_dim == 2


@pytest.mark.parametrize("name", ["pix2pix", "unet-vae-gan", "uunet", "edgan-pix2pix"])
def test_unet_sizes_resolved_from_the_image_side(name):
    """depth / d_layers None: down to 1x1 and pix2pix's PatchGAN depth for the data, in the resolved
    Config the networks are built from; the Config as given (config.json) keeps None."""
    from pygan.data.core import DataInfo
    from pygan.models import build_model

    for side, depth, d_layers in ((32, 5, 3), (16, 4, 2)):
        info = DataInfo("paired", (3, side, side), target_shape=(1, side, side))
        m = build_model(name, info, ["width=4", "d_width=4"])
        r = m.resolved_config
        assert m.config.depth is None and r.depth == depth == m.generator.depth
        if hasattr(r, "d_layers"):
            assert m.config.d_layers is None and r.d_layers == d_layers
    m = build_model(name, DataInfo("paired", (3, 32, 32), target_shape=(1, 32, 32)), ["depth=3", "width=4"])
    assert m.resolved_config.depth == 3 == m.generator.depth


def _doc_settings() -> list[str]:
    """Every ``--set key=value`` (and ``"key=value"`` override string) in the experiment docs."""
    found = set()
    for path in glob.glob(os.path.join(ROOT, "docs", "**", "*.*"), recursive=True):
        if not path.endswith((".md", ".py")):
            continue
        with open(path, encoding="utf-8") as f:
            text = f.read()
        found.update(re.findall(r"--set ([a-z_]+=[^\s`\"'),]+(?:,[^\s`\"')]+)*)", text))
        found.update(re.findall(r"\"([a-z_]+=[^\"{}\s]+)\"", text))
    return sorted(s for s in found if not s.startswith("key="))


def test_good_values_are_accepted():
    for model in list_models():
        cls = get_model(model).Config
        cls()  # the paper defaults
        names = {f.name for f in dataclasses.fields(cls)}
        edges = {"ema_decay": "0.999", "betas": "0,0.999", "gp_weight": "0", "mlp_layers": "0",
                 "acl_layers": "0", "kl_fake_ramp": "0", "ckl": "0", "weight_decay": "0", "dropout": "0",
                 "batch_size": "1", "z_dim": "1", "width": "1"}  # fmt: skip
        for key, value in edges.items():
            if key in names:
                cls(**parse_overrides(cls, [f"{key}={value}"]))
    for model, _data, overrides in all_cases().values():  # tests/_tiny.py
        cls = get_model(model).Config
        cls(**parse_overrides(cls, overrides))
    settings = _doc_settings()
    assert "fr_weight=100" in settings and "ckl=0" in settings, settings  # the scan finds them
    used = 0
    for setting in settings:
        key = setting.partition("=")[0]
        for model in list_models():
            cls = get_model(model).Config
            if key not in {f.name for f in dataclasses.fields(cls)}:
                continue
            try:
                values = parse_overrides(cls, [setting])
            except ConfigError:
                continue  # a value typed for another model's field of the same name
            cls(**values)
            used += 1
    assert used > 20


# ---- flags and other inputs ----------------------------------------------------------------------

TRAIN = ["train", "wgan-gp", "--data", "ring8", "--steps", "1", "--no-progress"]


def _flag_cases():
    cases = [
        (["--device", "gpu0"], "--device", "auto, cpu, cuda, cuda:N"),
        (["--device", "cuda:x"], "--device", "cuda:N"),
        (["--steps", "0"], "--steps", ">= 1"),
        (["--steps", "two"], "--steps", ">= 1"),
        (["--seed", "-1"], "--seed", ">= 0"),
        (["--log-every", "-1"], "--log-every", ">= 0"),
        (["--sample-every", "-5"], "--sample-every", ">= 0"),
        (["--ckpt-every", "-1"], "--ckpt-every", ">= 0"),
        (["--eval-every", "-1"], "--eval-every", ">= 0"),
        (["--n-samples", "0"], "--n-samples", ">= 1"),
        (["--threads", "-2"], "--threads", ">= 0"),
        (["--workers", "-1"], "--workers", ">= 0"),
        (["--workers", "100000"], "workers=100000", "CPU cores"),
        (["--amp", "fp8"], "--amp", "fp16"),
        (["--set", "nope=1"], "nope", "has no field"),
        (["--set", "width=wide"], "width", "expected int"),
        (["--set", "width"], "width", "key=value"),
        (["--set", "z_dim=0"], "z_dim", ">= 1"),
        (["--set", "width=-4"], "width", ">= 1"),
        (["--set", "ema_decay=1"], "ema_decay", "[0, 1)"),
        (["--set", "critic_norm=batch"], "critic_norm", "'none' or 'layer'"),
        (["--data", "ring8?limit=0"], "limit", ">= 1"),
        (["--data", "ring8?size=x"], "size", "int"),
        (["--data", "ring8?colour=1"], "colour", "unknown data option"),
        (["--data", "photo-gray16?sources=sklearn"], "--data digits32", "points data, got paired"),
        (["--data", "digits16?size=10"], "?size=32", "need an image side"),
        (["--bogus"], "--bogus", "unrecognized"),
        (["--divergence-threshold", "-1"], "--divergence-threshold", "> 0"),
        (["--divergence-threshold", "nan"], "--divergence-threshold", "> 0"),
        (["--divergence-threshold", "abc"], "--divergence-threshold", "invalid float"),
    ]
    for extra, name, what in cases:
        yield pytest.param(extra, name, what, id=" ".join(extra))


@pytest.mark.parametrize(("extra", "name", "what"), list(_flag_cases()))
def test_a_bad_train_flag_is_exit_2_and_one_line(extra, name, what, tmp_path, capsys):
    out = tmp_path / "r"
    if extra[0] == "--data":  # replaces the default ring8
        argv = ["train", "wgan-gp", *extra, "--steps", "1", "--out", str(out), "--no-progress"]
    else:
        argv = [*TRAIN, "--out", str(out), *extra]
    with _exit_code() as code:
        code.rc = main(argv)
    line = _one_error_line(capsys)
    assert code.rc == 2, line
    assert line.startswith("pygan train: error: ") and name in line and what in line, line
    assert not out.exists()


class _exit_code:
    """``main`` returns its status; argparse's usage errors raise SystemExit(2) (one line too)."""

    rc: int | None = None

    def __enter__(self):
        return self

    def __exit__(self, tp, exc, tb):
        if tp is SystemExit:
            self.rc = exc.code
            return True
        return False


@pytest.mark.parametrize(
    ("argv", "name"),
    [
        (["train", "--steps", "1", "--out", "x"], "MODEL"),
        (["train", "nope", "--steps", "1", "--out", "x"], "nope"),
        (["train", "wgan-gp", "--out", "x"], "--steps"),
        (["sample", "RUN", "--n", "0"], "--n"),
        (["sample", "RUN", "--batch-size", "0"], "--batch-size"),
        (["sample", "RUN", "--device", "gpu"], "--device"),
        (["eval", "RUN", "--quantize", "int4"], "--quantize"),
        (["bench", "--device", "tpu"], "--device"),
        (["list", "everything"], "what"),
        ([], "COMMAND"),
    ],
    ids=lambda v: " ".join(v) if isinstance(v, list) else v,
)
def test_other_bad_commands_are_exit_2_and_one_line(argv, name, capsys):
    with _exit_code() as code:
        code.rc = main(argv)
    line = _one_error_line(capsys)
    assert code.rc == 2 and name in line, line


def test_a_config_file_with_a_bad_train_setting(tmp_path, capsys):
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"model": "wgan-gp", "data": "ring8", "train": {"steps": 0}}))
    assert main(["train", "--config", str(path), "--out", str(tmp_path / "r")]) == 2
    assert "steps must be an int >= 1, got 0" in _one_error_line(capsys)
    path.write_text(json.dumps({"model": "wgan-gp", "train": {"steps": 1, "device": "gpu0"}}))
    assert main(["train", "--config", str(path), "--out", str(tmp_path / "r")]) == 2
    assert "device must be one of auto, cpu, cuda, cuda:N" in _one_error_line(capsys)
    path.write_text(json.dumps({"model": "wgan-gp", "model_config": {"n_critic": 0}, "train": {"steps": 1}}))
    assert main(["train", "--config", str(path), "--out", str(tmp_path / "r")]) == 2
    assert "n_critic must be an int >= 1, got 0" in _one_error_line(capsys)


def test_a_cuda_device_without_cuda(tmp_path, capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    assert main([*TRAIN, "--out", str(tmp_path / "r"), "--device", "cuda:0"]) == 2
    assert "--device cuda:0: CUDA is not available here" in _one_error_line(capsys)


def test_an_unexpected_error_is_one_line_too(tmp_path, capsys, monkeypatch):
    """A failure nobody anticipated (a bug) is still one line, exit 1, and says how to see more;
    PYGAN_TRACEBACK=1 re-raises it."""
    import pygan.train

    def boom(*a, **k):
        raise RuntimeError("kaboom\nsecond line")

    monkeypatch.setattr(pygan.train, "train", boom)
    assert main([*TRAIN, "--out", str(tmp_path / "r")]) == 1
    line = _one_error_line(capsys)
    assert "unexpected RuntimeError: kaboom second line" in line and "PYGAN_TRACEBACK=1" in line
    monkeypatch.setenv("PYGAN_TRACEBACK", "1")
    with pytest.raises(RuntimeError, match="kaboom"):
        main([*TRAIN, "--out", str(tmp_path / "r")])


# ---- pygan eval -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def points_run(tmp_path_factory):
    run = str(tmp_path_factory.mktemp("eval") / "run")
    argv = ["train", "wgan-gp", "--data", "ring8", "--steps", "1", "--out", run, "--no-progress",
            "--no-tensorboard", "--set", "mlp_hidden=8", "--set", "batch_size=8"]  # fmt: skip
    assert main(argv) == 0
    return run


@pytest.mark.parametrize(
    ("option", "name"),
    [
        ("nope=1", "'nope'"),
        ("n_samples=0", "n_samples=0"),
        ("seed=-3", "seed=-3"),
        ("kid_subset_size=1", "kid_subset_size=1"),
        ("device=gpu", "device='gpu'"),
        ("metrics=fidd", "'fidd'"),
        ("novalue", "key=value"),
    ],
)
def test_eval_rejects_unknown_options_and_bad_values(points_run, option, name, capsys):
    assert main(["eval", points_run, "--option", option]) == 2
    line = _one_error_line(capsys)
    assert line.startswith("pygan eval: error: ") and name in line, line


def test_eval_lists_skipped_metrics_and_fails_when_none_was_computed(points_run, tmp_path, capsys):
    out = str(tmp_path / "m.json")
    # mode coverage computes; fid was asked for but does not apply to points: listed, exit 0
    assert (
        main(["eval", points_run, "--option", "n_samples=50", "--metrics", "mode_coverage,fid", "--out", out])
        == 0
    )
    cap = capsys.readouterr()
    with open(out) as f:
        res = json.load(f)
    assert set(res["metrics"]) == {"mode_coverage"}
    assert res["skipped"] == {"fid": "not defined for points data"}
    assert "pygan eval: skipped fid: not defined for points data" in cap.err.splitlines()
    # nothing computable: exit 1, the reasons on stderr and in the JSON
    assert main(["eval", points_run, "--metrics", "fid,kid", "--out", out]) == 1
    cap = capsys.readouterr()
    with open(out) as f:
        res = json.load(f)
    assert res["metrics"] == {} and set(res["skipped"]) == {"fid", "kid"}
    err = cap.err.splitlines()
    assert "pygan eval: skipped kid: not defined for points data" in err
    assert (
        err[-1]
        == f"pygan eval: error: no metric could be computed for {points_run} (2 skipped, reasons above)"
    )


def test_eval_skips_a_metric_that_fails_to_compute(tmp_path):
    """A metric that applies but cannot be computed (here: Inception weights that are not there) is
    skipped with the reason instead of failing the whole evaluation."""
    import torch

    from pygan.evaluate import evaluate_run

    class Images(torch.nn.Module):
        def sample(self, n, generator=None):
            return torch.rand(n, 1, 16, 16, generator=generator) * 2 - 1

        def reconstruct(self, x):
            return x

    data = {"name": "photos", "kind": "images", "real": torch.rand(40, 1, 16, 16) * 2 - 1}
    missing = str(tmp_path / "no-such-inception.pth")
    res = evaluate_run(
        tmp_path, loader=lambda _: (Images(), {}, data), n_samples=40, inception_weights=missing, write=False
    )
    assert set(res["metrics"]) == {"reconstruction"}
    for name in ("fid", "kid", "precision_recall", "density_coverage", "inception_score"):
        assert res["skipped"][name].startswith("could not be computed: "), res["skipped"]
        assert "no-such-inception.pth" in res["skipped"][name]


def test_eval_on_images_without_any_extractor_says_why(tmp_path):
    """A photo run without Inception weights: FID & co. are skipped with the reason (no extractor)."""
    import torch

    from pygan.evaluate import evaluate_run

    class Images(torch.nn.Module):
        def sample(self, n, generator=None):
            return torch.rand(n, 3, 16, 16, generator=generator) * 2 - 1

    data = {"name": "photos", "kind": "images", "real": torch.rand(20, 3, 16, 16) * 2 - 1}
    os.environ.pop("PYGAN_INCEPTION_WEIGHTS", None)
    res = evaluate_run(tmp_path, loader=lambda _: (Images(), {}, data), n_samples=20, write=False)
    from pygan.backbones.inception import find_inception_weights

    if find_inception_weights() is not None:
        pytest.skip("Inception weights are installed here")
    assert res["metrics"] == {}
    assert "no feature extractor" in res["skipped"]["fid"] and "inception_score" in res["skipped"]
