"""The training loop: run directory, exact resume, atomic checkpoints under SIGKILL, non-finite
losses, the contract for paired/two-domain models, bf16 autocast, and DDP on 2 CPU processes."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
import torch

from pygan.runs import load_checkpoint, load_run, read_config, run_paths
from pygan.train import NonFiniteLossError, train

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = ["width=4", "batch_size=4", "n_critic=2"]


pytestmark = pytest.mark.usefixtures("one_thread")


def _train(out, steps, data="digits16", **kw):
    kw.setdefault("progress", False)
    kw.setdefault("tensorboard", False)
    return train("wgan-gp", data, str(out), steps, overrides=kw.pop("overrides", TINY), **kw)


def _rows(run, drop=("time", "img_per_s")):
    with open(run_paths(str(run))["metrics"]) as f:
        return [{k: v for k, v in json.loads(line).items() if k not in drop} for line in f]


def _env():
    env = dict(
        os.environ, OMP_NUM_THREADS="1", PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", "")
    )
    env.pop("PYGAN_BACKEND", None)
    return env


def test_run_directory_layout(tmp_path):
    run = tmp_path / "run"
    model = _train(run, 4, log_every=1, sample_every=2, ckpt_every=2, eval_every=2, keep_checkpoints=True)
    p = run_paths(str(run))
    cfg = read_config(str(run))
    assert cfg["model"] == "wgan-gp" and cfg["data"] == {"spec": "digits16", "spec_b": None}
    assert cfg["model_config"]["width"] == 4 and cfg["model_config"]["betas"] == [0.0, 0.9]
    assert cfg["data_info"]["shape"] == [1, 16, 16] and cfg["train"]["steps"] == 4 and cfg["world_size"] == 1
    rows = _rows(run)
    assert [r["step"] for r in rows if "loss_d" in r] == [1, 2, 3, 4]
    assert [r["step"] for r in rows if "eval/wdist" in r] == [2, 4]
    umask = os.umask(0)
    os.umask(umask)
    for f in (p["last"], p["config"]):  # atomic writes keep a plain file's permissions
        assert os.stat(f).st_mode & 0o777 == 0o666 & ~umask
    ck = torch.load(p["last"], weights_only=True)
    assert ck["step"] == 4 and set(ck["optimizers"]) == {"critic", "generator"} and len(ck["rng"]) == 1
    assert os.path.isfile(os.path.join(p["checkpoints"], "step_0000002.pt"))
    assert load_checkpoint(os.path.join(p["checkpoints"], "step_0000002.pt"))["step"] == 2
    from PIL import Image

    for name in ("step_0000002.png", "step_0000004.png", "last.png"):
        assert (
            Image.open(os.path.join(p["samples"], name)).size == ((8 * 18 + 2) * 4,) * 2
        )  # 16 px + 2 pad, x4
    loaded, config, data = load_run(str(run))
    assert config.width == 4 and data.spec == "digits16" and loaded.trained_steps == 4
    for (k, v), w in zip(loaded.state_dict().items(), model.state_dict().values()):
        assert torch.equal(v, w), k
    assert len(data.load("test")) == 359


def test_resume_reproduces_the_loss_curve(tmp_path):
    opts = dict(log_every=1, ckpt_every=2, sample_every=3, eval_every=3)
    straight = _train(tmp_path / "a", 6, **opts)
    _train(tmp_path / "b", 3, **opts)
    resumed = _train(tmp_path / "b", 6, resume=True, **opts)
    assert _rows(tmp_path / "a") == _rows(tmp_path / "b")
    for (k, v), w in zip(straight.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(v, w), k
    a = torch.load(run_paths(str(tmp_path / "a"))["last"], weights_only=True)
    b = torch.load(run_paths(str(tmp_path / "b"))["last"], weights_only=True)
    for name in ("critic", "generator"):
        for sa, sb in zip(a["optimizers"][name]["state"].values(), b["optimizers"][name]["state"].values()):
            assert all(torch.equal(sa[k], sb[k]) for k in sa)


def test_resume_from_an_older_checkpoint_drops_the_lines_after_it(tmp_path):
    opts = dict(log_every=1, ckpt_every=2, sample_every=0)
    _train(tmp_path / "a", 5, **opts)
    _train(tmp_path / "b", 4, keep_checkpoints=True, **opts)
    p = run_paths(str(tmp_path / "b"))
    shutil.copy(os.path.join(p["checkpoints"], "step_0000002.pt"), p["last"])  # as if killed after step 3
    stale = os.path.join(p["checkpoints"], ".last.pt.x1y2.tmp")  # as if killed mid-save
    open(stale, "wb").close()
    _train(tmp_path / "b", 5, resume=True, **opts)
    assert [r["step"] for r in _rows(tmp_path / "b")] == [1, 2, 3, 4, 5]
    assert not os.path.exists(stale)
    assert _rows(tmp_path / "a") == _rows(tmp_path / "b")


def test_resume_errors(tmp_path):
    _train(tmp_path / "r", 1, sample_every=0)
    with pytest.raises(FileExistsError, match="already holds a run; use --resume"):
        _train(tmp_path / "r", 2)
    with pytest.raises(ValueError, match=r"data spec: 'digits16' in the run, 'digits32' now"):
        _train(tmp_path / "r", 2, data="digits32", resume=True)
    with pytest.raises(ValueError, match="width: 4 in the run, 8 now"):
        _train(tmp_path / "r", 2, resume=True, overrides=["width=8"])
    with pytest.raises(FileNotFoundError, match="not a pygan run directory"):
        _train(tmp_path / "empty", 2, resume=True)
    os.remove(run_paths(str(tmp_path / "r"))["last"])
    with pytest.raises(FileNotFoundError, match=r"holds no checkpoint .* nothing to resume"):
        _train(tmp_path / "r", 2, resume=True)
    with pytest.raises(ValueError, match="steps must be an int >= 1"):
        _train(tmp_path / "s", 0)


def test_kill_during_save_leaves_the_previous_checkpoint_loadable(tmp_path):
    """SIGKILL a process in the middle of writing a large checkpoint: last.pt must still load and
    hold a complete earlier save; the partial write is only ever a temporary file."""
    path = tmp_path / "ckpt" / "last.pt"
    mb = 96
    killed_mid_save = False
    for _ in range(4):
        proc = subprocess.Popen(
            [sys.executable, os.path.join(ROOT, "tests", "_save_worker.py"), str(path), str(mb)],
            stdout=subprocess.PIPE,
            text=True,
            env=_env(),
        )
        try:
            done = 0
            for line in proc.stdout:
                kind, k = line.split()
                if kind == "done":
                    done = int(k)
                elif done >= 1:  # a later save has begun: kill it as soon as its temp file is there
                    t_end = time.monotonic() + 10
                    while time.monotonic() < t_end and not any(
                        f.endswith(".tmp") for f in os.listdir(path.parent)
                    ):
                        time.sleep(0.0005)
                    proc.send_signal(signal.SIGKILL)
                    break
        finally:
            proc.kill()
            proc.wait()
        ck = load_checkpoint(str(path))
        assert ck["step"] >= 1 and ck["blob"].numel() == mb * 2**20 // 4
        assert torch.equal(ck["blob"][:: 2**16], torch.full_like(ck["blob"][:: 2**16], ck["step"]))
        if any(f.endswith(".tmp") for f in os.listdir(path.parent)):  # the kill landed inside a write
            killed_mid_save = True
            break
    assert killed_mid_save, "never managed to kill the writer mid-save"


def test_non_finite_loss_stops_with_the_loss_and_step(tmp_path, test_models):
    run = tmp_path / "nan"
    with pytest.raises(
        NonFiniteLossError,
        match=r"loss 'l1' is nan at step 5; stopping \(the last good checkpoint is .*last.pt",
    ):
        train(
            "test-paired",
            "photo-gray16?sources=sklearn",
            str(run),
            10,
            overrides=["nan_at=5"],
            ckpt_every=2,
            log_every=1,
            sample_every=0,
            progress=False,
            tensorboard=False,
        )
    ck = load_checkpoint(run_paths(str(run))["last"])
    assert ck["step"] == 4
    assert [r["step"] for r in _rows(run)] == [1, 2, 3, 4]
    model, _, _ = load_run(str(run))
    assert torch.isfinite(model.net.weight).all()


def test_paired_and_two_domain_contract(tmp_path, test_models):
    from PIL import Image

    train(
        "test-paired",
        "photo-gray16?sources=sklearn",
        str(tmp_path / "p"),
        3,
        n_samples=4,
        progress=False,
        tensorboard=False,
    )
    # (input, output, target) triples, 2 per row; 16 px tiles with 2 px padding, enlarged x4
    assert Image.open(run_paths(str(tmp_path / "p"))["samples"] + "/last.png").size == (440, 152)
    m = train(
        "test-two-domain",
        "digits16-edge",
        str(tmp_path / "t"),
        3,
        n_samples=4,
        progress=False,
        tensorboard=False,
    )
    assert Image.open(run_paths(str(tmp_path / "t"))["samples"] + "/last.png").size == (584, 80)
    assert m.a.abs().sum() > 0 and m.b.abs().sum() > 0


def test_bf16_autocast_runs(tmp_path):
    _train(tmp_path / "amp", 2, amp=True, log_every=1, sample_every=0)
    rows = _rows(tmp_path / "amp")
    assert len(rows) == 2 and all(abs(v) < 1e6 for r in rows for v in r.values())


def test_ddp_two_processes_hold_identical_weights(tmp_path):
    import torch.multiprocessing as mp

    from tests import _ddp_worker

    steps = 3
    mp.start_processes(
        _ddp_worker.run,
        args=(2, _ddp_worker.free_port(), str(tmp_path), steps),
        nprocs=2,
        join=True,
        start_method="spawn",
    )
    w0, w1 = torch.load(tmp_path / "rank0.pt"), torch.load(tmp_path / "rank1.pt")
    for k in w0:
        if "running" not in k and "num_batches" not in k:  # BN statistics are rank-local between broadcasts
            assert torch.equal(w0[k], w1[k]), k
    l0 = json.loads((tmp_path / "logs0.json").read_text())
    l1 = json.loads((tmp_path / "logs1.json").read_text())
    assert len(l0) == len(l1) == steps and l0[0] != l1[0]  # the ranks saw different data and noise
    cfg = read_config(str(tmp_path / "run"))
    assert (
        cfg["world_size"] == 2 and load_checkpoint(run_paths(str(tmp_path / "run"))["last"])["step"] == steps
    )
    # DDP's gradients of the penalised critic loss = the mean of the single-process gradients
    from pygan.models.wgan_gp import ConvCritic
    from pygan.ops import gradient_penalty_ref

    critic = ConvCritic(1, 16, 4, "none").double()
    critic.load_state_dict({k[len("critic.") :]: v for k, v in w0.items() if k.startswith("critic.")})
    expected = {}
    for r in (0, 1):
        d = torch.load(tmp_path / f"gp{r}.pt")
        critic.zero_grad()
        loss = critic(d["fake"]).mean() - critic(d["real"]).mean()
        loss = loss + gradient_penalty_ref(critic, d["real"], d["fake"], alpha=d["alpha"])
        loss.backward()
        for n, p in critic.named_parameters():
            expected[n] = expected.get(n, 0) + p.grad / 2
    for r in (0, 1):
        got = torch.load(tmp_path / f"gp{r}.pt")["grads"]
        for n, g in got.items():
            torch.testing.assert_close(g, expected[n], rtol=1e-10, atol=1e-12, msg=f"rank {r} {n}")


def test_torchrun_cli_and_resume(tmp_path):
    out = tmp_path / "tr"

    def torchrun(steps, *extra):
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
        cmd += ["-m", "pygan", "train", "wgan-gp", "--data", "ring8", "--steps", str(steps)]
        cmd += ["--out", str(out), "--set", "mlp_hidden=8", "--set", "batch_size=8", "--no-progress"]
        cmd += ["--sample-every", "0", *extra]
        r = subprocess.run(cmd, capture_output=True, text=True, env=_env(), timeout=300, cwd=str(tmp_path))
        assert r.returncode == 0, r.stderr[-3000:]

    torchrun(2)
    assert read_config(str(out))["world_size"] == 2
    ck = load_checkpoint(run_paths(str(out))["last"])
    assert ck["step"] == 2 and ck["world_size"] == 2 and len(ck["rng"]) == 2
    assert not torch.equal(ck["rng"][0]["torch"], ck["rng"][1]["torch"])  # each rank its own noise
    assert os.path.isfile(run_paths(str(out))["samples"] + "/last.png")
    torchrun(3, "--resume")
    assert load_checkpoint(run_paths(str(out))["last"])["step"] == 3
    assert [r["step"] for r in _rows(out)] == [2, 3]  # log_every 10: only each run's final step
