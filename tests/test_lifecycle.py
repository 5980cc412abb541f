"""A run never traps its user (issue 16): failed starts rerun with the same command, SIGINT/SIGTERM
checkpoint and exit 130/143 (a real signal to a real training process), a second Ctrl-C during the
save aborts without touching last.pt, resume messages name what differs, --steps at the checkpoint
says so, and the divergence watch warns or stops keeping the last good checkpoint."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from pygan import cli
from pygan import train as train_mod
from pygan.runs import CHECKPOINT_FORMAT, NoCheckpointError, load_checkpoint, run_paths, save_checkpoint
from pygan.train import DivergenceError, NonFiniteLossError, TrainingInterrupted, TrainOptions, train
from tests import _models

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = ["width=4", "batch_size=4", "n_critic=2"]
PAIRED = "photo-gray16?sources=sklearn&limit=16"
QUIET = dict(progress=False, tensorboard=False)

pytestmark = pytest.mark.usefixtures("one_thread")


def _wgan(out, steps, **kw):
    kw = {**QUIET, **kw}
    return train(
        "wgan-gp", kw.pop("data", "digits16"), str(out), steps, overrides=kw.pop("overrides", TINY), **kw
    )


def _paired(out, steps, overrides=(), **kw):
    return train("test-paired", PAIRED, str(out), steps, overrides=list(overrides), **{**QUIET, **kw})


def _rows(run):
    with open(run_paths(str(run))["metrics"]) as f:
        return [{k: v for k, v in json.loads(x).items() if k not in ("time", "img_per_s")} for x in f]


def _snapshot(run):
    out = {}
    for d, _, files in os.walk(run):
        for f in files:
            p = os.path.join(d, f)
            with open(p, "rb") as fh:
                out[p] = (os.stat(p).st_mtime_ns, fh.read())
    return out


# ---- failed starts ---------------------------------------------------------------------------------


def test_failed_start_reruns_with_the_same_command(tmp_path, test_models, monkeypatch, capsys):
    run = tmp_path / "run"
    calls = {"n": 0}
    real = _models.PairedTiny.training_step

    def flaky(self, batch):  # the first process's decoding fails at step 2 (a truncated image)
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError("image file is truncated")
        return real(self, batch)

    monkeypatch.setattr(_models.PairedTiny, "training_step", flaky)
    with pytest.raises(OSError, match="truncated"):
        _paired(run, 4, log_every=1, ckpt_every=3, sample_every=1)
    p = run_paths(str(run))
    assert os.path.isfile(p["config"]) and not os.path.exists(p["last"])
    assert os.path.isfile(os.path.join(p["samples"], "step_0000001.png"))
    (run / "notes.txt").write_text("mine")  # a user's file in the run folder survives the restart
    stale = [  # temporary files of atomic writes killed midway (copy_file, write_json)
        os.path.join(p["samples"], ".last.png.k1l2.tmp"),
        os.path.join(p["samples"], "last.png.tmp"),
        os.path.join(str(run), ".config.json.k1l2.tmp"),
    ]
    for f in stale:
        open(f, "wb").close()

    with pytest.raises(
        NoCheckpointError, match=r"holds no checkpoint .*nothing to resume; run the same command"
    ):
        _paired(run, 4, log_every=1, ckpt_every=3, sample_every=1, resume=True)

    capsys.readouterr()
    _paired(run, 4, log_every=1, ckpt_every=3, sample_every=4)  # the same call again
    err = capsys.readouterr().err
    assert "previous start failed before the first checkpoint" in err and "starting the run again" in err
    assert load_checkpoint(p["last"])["step"] == 4
    assert [r["step"] for r in _rows(run)] == [1, 2, 3, 4]
    assert sorted(os.listdir(p["samples"])) == ["last.png", "step_0000004.png"]  # the old grid went
    assert (run / "notes.txt").read_text() == "mine"
    assert not any(os.path.exists(f) for f in stale)
    with pytest.raises(FileExistsError, match="already holds a run; use --resume"):
        _paired(run, 4)


def test_nan_at_step_one_then_resume_and_rerun_from_the_cli(tmp_path, test_models, capsys):
    run = str(tmp_path / "run")
    base = ["train", "test-paired", "--data", PAIRED, "--out", run, "--steps", "3", "--log-every", "1"]
    base += ["--no-progress", "--no-tensorboard", "--sample-every", "0"]
    assert cli.main([*base, "--set", "nan_at=1"]) == 1
    err = capsys.readouterr().err.strip()
    assert (
        "loss 'l1' is nan at step 1" in err
        and "the same command, without --resume, starts the run again" in err
    )
    assert cli.main([*base, "--resume"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "nothing to resume" in err[0]
    assert err[0].endswith(
        f"pygan train test-paired --data '{PAIRED}' --out {run} --steps 3 --log-every 1 "
        "--no-progress --no-tensorboard --sample-every 0"
    )
    assert cli.main(base) == 0
    assert load_checkpoint(run_paths(run)["last"])["step"] == 3


def test_kept_checkpoints_without_last_are_not_a_failed_start(tmp_path):
    run = tmp_path / "r"
    _wgan(run, 2, ckpt_every=1, sample_every=0, keep_checkpoints=True)
    os.remove(run_paths(str(run))["last"])
    with pytest.raises(FileExistsError, match=r"step_0000002.pt, no last.pt"):
        _wgan(run, 2)


# ---- signals -----------------------------------------------------------------------------------------


def test_signal_stop_checkpoints_and_resume_is_exact(tmp_path, monkeypatch):
    """A SIGINT during step 5 (in this process): the loop finishes it, writes last.pt at step 5 and
    raises TrainingInterrupted; resuming gives the uninterrupted run's losses and weights."""
    opts = dict(log_every=1, ckpt_every=3, sample_every=0)
    straight = _wgan(tmp_path / "a", 8, **opts)
    real = train_mod.EagerStep.__call__

    def step(self, batch, i):
        out = real(self, batch, i)
        if i == 4:
            os.kill(os.getpid(), signal.SIGINT)
        return out

    monkeypatch.setattr(train_mod.EagerStep, "__call__", step)
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    with pytest.raises(
        TrainingInterrupted, match=r"SIGINT: stopped after step 5; checkpoint of step 5 written"
    ) as e:
        _wgan(tmp_path / "b", 8, **opts)
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before  # restored
    assert e.value.signum == signal.SIGINT and e.value.exit_code == 130 and e.value.step == 5
    assert e.value.checkpoint == run_paths(str(tmp_path / "b"))["last"]
    assert load_checkpoint(e.value.checkpoint)["step"] == 5
    monkeypatch.setattr(train_mod.EagerStep, "__call__", real)
    resumed = _wgan(tmp_path / "b", 8, resume=True, **opts)
    assert _rows(tmp_path / "a") == _rows(tmp_path / "b")
    for (k, v), w in zip(straight.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(v, w), k


def test_second_ctrl_c_during_the_save_aborts_and_keeps_last_pt(tmp_path):
    path = str(tmp_path / "last.pt")
    save_checkpoint({"format": CHECKPOINT_FORMAT, "step": 3}, path)

    class SecondCtrlC:  # pickled in the middle of torch.save
        def __reduce__(self):
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.01)
            return (int, (0,))

    with train_mod._StopSignals() as stop:
        os.kill(os.getpid(), signal.SIGTERM)
        os.kill(os.getpid(), signal.SIGTERM)  # ignored: the stop is under way
        assert stop.signum == signal.SIGTERM
        stop.good = (path, 3)
        with pytest.raises(
            TrainingInterrupted, match=r"SIGINT again: aborted at once .*last.pt is the checkpoint of step 3"
        ) as e:
            save_checkpoint({"format": CHECKPOINT_FORMAT, "step": 4, "x": SecondCtrlC()}, path)
    assert e.value.exit_code == 130
    assert load_checkpoint(path)["step"] == 3
    assert os.listdir(tmp_path) == ["last.pt"]  # the temporary file is gone


def _cli_process(out, signum):
    cmd = [sys.executable, "-m", "pygan", "train", "wgan-gp", "--data", "digits16", "--steps", "100000"]
    cmd += ["--out", str(out), "--log-every", "1", "--ckpt-every", "100000", "--sample-every", "0"]
    cmd += ["--no-progress", "--no-tensorboard", "--threads", "1"] + [f"--set={s}" for s in TINY]
    env = dict(
        os.environ, OMP_NUM_THREADS="1", PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", "")
    )
    env.pop("PYGAN_BACKEND", None)

    def default_handlers():  # a background shell leaves SIGINT ignored; a terminal's process does not
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)

    return subprocess.Popen(
        cmd,
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=default_handlers,
    )


def test_real_sigint_and_sigterm_checkpoint_exit_130_143_and_resume(tmp_path):
    runs = {signal.SIGINT: tmp_path / "int", signal.SIGTERM: tmp_path / "term"}
    procs = {s: _cli_process(run, s) for s, run in runs.items()}
    try:
        for s, proc in procs.items():
            metrics = run_paths(str(runs[s]))["metrics"]
            t_end = time.monotonic() + 120
            while time.monotonic() < t_end and proc.poll() is None:
                if os.path.isfile(metrics) and os.path.getsize(metrics) > 0:
                    break
                time.sleep(0.05)
            assert proc.poll() is None, proc.communicate()
            proc.send_signal(s)
        results = {s: (proc.wait(timeout=60), *proc.communicate()) for s, proc in procs.items()}
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    for s, (rc, out, err) in results.items():
        name = signal.Signals(s).name
        assert rc == {signal.SIGINT: 130, signal.SIGTERM: 143}[s], err
        assert "done" not in out
        last = run_paths(str(runs[s]))["last"]
        step = load_checkpoint(last)["step"]
        assert step >= 1
        assert f"{name}: stopping after the current step" in err
        assert (
            f"pygan train: {name}: stopped after step {step}; checkpoint of step {step} written to {last}"
            in err
        )
        assert _rows(runs[s])[-1]["step"] <= step
    run = runs[signal.SIGINT]
    step = load_checkpoint(run_paths(str(run))["last"])["step"]
    argv = ["train", "wgan-gp", "--data", "digits16", "--steps", str(step + 2), "--out", str(run), "--resume"]
    argv += ["--log-every", "1", "--no-progress", "--no-tensorboard", "--sample-every", "0"]
    argv += [f"--set={s}" for s in TINY]
    assert cli.main(argv) == 0
    assert load_checkpoint(run_paths(str(run))["last"])["step"] == step + 2
    assert [r["step"] for r in _rows(run)][-3:] == [step, step + 1, step + 2]


# ---- resume messages ---------------------------------------------------------------------------------


def test_resume_mismatch_names_every_key_with_both_values(tmp_path):
    run = tmp_path / "r"
    _wgan(run, 1, sample_every=0)
    with pytest.raises(ValueError) as e:
        _wgan(
            run, 2, resume=True, data="digits32", overrides=[*TINY, "width=8", "lr=0.001"], seed=3, amp="bf16"
        )
    msg = str(e.value)
    assert msg.startswith(f"--resume: {run} was trained with other settings: ")
    for part in (
        "data spec: 'digits16' in the run, 'digits32' now",
        "width: 4 in the run, 8 now",
        "lr: 0.0001 in the run, 0.001 now",
        "seed: 0 in the run, 3 now",
        "amp: False in the run, 'bf16' now",
    ):
        assert part in msg
    assert "n_critic" not in msg and "batch_size" not in msg  # only what differs
    with pytest.raises(ValueError, match=r"model: 'wgan-gp' in the run, 'dcgan' now"):
        train("dcgan", "digits16", str(run), 2, resume=True, **QUIET)


def test_steps_at_or_below_the_checkpoint_says_so_and_touches_nothing(tmp_path, capsys):
    run = tmp_path / "r"
    trained = _wgan(run, 3, sample_every=0)
    before = _snapshot(run)
    capsys.readouterr()
    for steps in (3, 2):
        model = _wgan(run, steps, resume=True)
        err = capsys.readouterr().err.strip().splitlines()
        assert err == [
            f"{run} is already at step 3 (--steps {steps}): nothing to do; raise --steps to continue"
        ]
        assert model.train_stats["already_at"] == 3 and model.train_stats["steps_run"] == 0
        for (k, v), w in zip(trained.state_dict().items(), model.state_dict().values()):
            assert torch.equal(v, w), k
    argv = ["train", "wgan-gp", "--data", "digits16", "--steps", "3", "--out", str(run), "--resume"]
    assert cli.main([*argv, "--no-progress", "--no-tensorboard", *[f"--set={s}" for s in TINY]]) == 0
    cap = capsys.readouterr()
    assert cap.out == "" and "already at step 3" in cap.err
    assert _snapshot(run) == before


# ---- divergence --------------------------------------------------------------------------------------


def test_divergence_default_and_validation():
    assert TrainOptions(steps=1).divergence_threshold == 1e10
    for bad in (0, -1.0, float("nan"), "big", True):
        with pytest.raises(
            ValueError, match=r"divergence_threshold \(--divergence-threshold\) must be a number > 0"
        ):
            TrainOptions(steps=1, divergence_threshold=bad)
    with pytest.raises(ValueError, match="divergence_logs must be an int >= 1"):
        TrainOptions(steps=1, divergence_logs=0)
    assert TrainOptions(steps=1, divergence_threshold=float("inf")).divergence_threshold == float("inf")


def test_divergence_warns_once_and_the_run_goes_on(tmp_path, test_models, capsys):
    _paired(tmp_path / "w", 8, ["huge_at=5"], log_every=1, ckpt_every=2, sample_every=0)
    err = [x for x in capsys.readouterr().err.splitlines() if "divergence" in x]
    assert err == [
        "warning: loss 'l1' is 1e+38 at step 5 above the divergence threshold 1e+10 in magnitude: the run "
        "may be diverging (warned once; --stop-on-divergence stops it, --divergence-threshold sets the level)"
    ]
    assert load_checkpoint(run_paths(str(tmp_path / "w"))["last"])["step"] == 8


@pytest.mark.parametrize("logs", [1, 3])
def test_stop_on_divergence_keeps_the_last_good_checkpoint(tmp_path, test_models, capsys, logs):
    run = tmp_path / "s"
    with pytest.raises(
        DivergenceError, match=r"loss 'l1' is 1e\+38 at step 5 above the divergence threshold"
    ) as e:
        _paired(
            run,
            12,
            ["huge_at=5"],
            log_every=1,
            ckpt_every=2,
            sample_every=0,
            keep_checkpoints=True,
            stop_on_divergence=True,
            divergence_logs=logs,
        )
    assert isinstance(e.value, NonFiniteLossError) and (e.value.loss, e.value.step) == ("l1", 5)
    p = run_paths(str(run))
    assert f"the last good checkpoint is {p['last']}" in str(e.value)
    assert load_checkpoint(p["last"])["step"] == 4
    with open(p["last"], "rb") as a, open(os.path.join(p["checkpoints"], "step_0000004.pt"), "rb") as b:
        assert a.read() == b.read()  # the step-4 save, not overwritten from the diverged state
    assert sorted(os.listdir(p["checkpoints"])) == ["last.pt", "step_0000002.pt", "step_0000004.pt"]
    if logs == 3:  # reads at steps 5, 6, 7: the checkpoint of step 6 was held back
        assert "(and at 3 consecutive reads)" in str(e.value)
        assert "checkpoint of step 6 not written" in capsys.readouterr().err


def test_cli_divergence_flags(tmp_path, test_models, capsys):
    argv = [
        "train",
        "test-paired",
        "--data",
        PAIRED,
        "--steps",
        "6",
        "--out",
        str(tmp_path / "c"),
        "--set=huge_at=3",
    ]
    argv += [
        "--log-every",
        "1",
        "--ckpt-every",
        "2",
        "--sample-every",
        "0",
        "--no-progress",
        "--no-tensorboard",
    ]
    assert (
        cli.main([*argv, "--stop-on-divergence", "--divergence-threshold", "1e39"]) == 0
    )  # below 1e39: fine
    capsys.readouterr()
    assert cli.main([*argv[:7], str(tmp_path / "d"), *argv[8:], "--stop-on-divergence"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "loss 'l1' is 1e+38 at step 3" in err[0] and "--stop-on-divergence" in err[0]
