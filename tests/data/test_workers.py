"""Image files decoded in loader worker processes: batches and saved positions independent of the
worker count, exact resume mid-epoch, DDP slices, the decode cache, JPEG draft mode, errors that name
the file in the training process, and no worker left behind."""

import json
import os
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from pygan.data import DataError, Loader, check_workers, default_workers, load_data
from pygan.data import core as data_core
from pygan.data import files as data_files
from pygan.data.core import usable_cores

pytestmark = pytest.mark.usefixtures("one_thread")


def _children() -> set[int]:
    """Live child processes of this process (Linux /proc)."""
    me, out = os.getpid(), set()
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == me and fields[0] != "Z":
            out.add(int(d))
    return out


def _write(path, arr, fmt=None):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.fromarray(arr).save(path, fmt)


@pytest.fixture
def folder(tmp_path):
    """23 distinct colour images (PNG and JPEG, odd sizes) in two class folders."""
    rng = np.random.RandomState(0)
    for i in range(23):
        arr = rng.randint(0, 256, size=(10 + i % 3, 12, 3)).astype(np.uint8)
        ext = "png" if i % 2 else "jpg"
        _write(str(tmp_path / "imgs" / ("a" if i < 12 else "b") / f"{i:02d}.{ext}"), arr)
    return tmp_path / "imgs"


def _same(a, b):
    assert a.fields().keys() == b.fields().keys()
    for k, v in a.fields().items():
        assert torch.equal(v, getattr(b, k)), k


def test_workers_give_the_batches_and_positions_of_workers_0_across_epochs(folder):
    d0 = load_data(f"folder:{folder}?size=8")
    d2 = load_data(f"folder:{folder}?size=8")
    ref = Loader(d0, 5, seed=3)
    with Loader(d2, 5, seed=3, workers=2) as w:
        assert w.workers == 2
        for _ in range(11):  # 55 rows: past two epoch boundaries of 23
            _same(ref.next(), w.next())
            assert w.state_dict() == ref.state_dict()  # consumed, not prefetched
    assert ref.state_dict() == {"streams": [{"epoch": 2, "offset": 9}]}


def test_resume_mid_epoch_with_workers_sees_the_uninterrupted_batches(folder):
    d = load_data(f"folder:{folder}?size=8")
    with Loader(d, 4, seed=1, workers=2) as straight:
        expected = [straight.next() for _ in range(9)]
    with Loader(load_data(f"folder:{folder}?size=8"), 4, seed=1, workers=2) as first:
        got = [first.next() for _ in range(3)]
        state = first.state_dict()  # the workers have decoded batches 4.. already
    assert state == {"streams": [{"epoch": 0, "offset": 12}]}
    with Loader(load_data(f"folder:{folder}?size=8"), 4, seed=1, workers=2) as resumed:
        resumed.load_state_dict(state)
        got += [resumed.next() for _ in range(6)]
    for a, b in zip(expected, got):
        _same(a, b)


def test_load_state_dict_and_other_batch_sizes_drop_the_prefetched_batches(folder):
    d = load_data(f"folder:{folder}?size=8")
    ref = Loader(d, 4, seed=2)
    w = Loader(load_data(f"folder:{folder}?size=8"), 4, seed=2, workers=1)
    try:
        _same(ref.next(), w.next())
        _same(ref.next(3), w.next(3))  # another size: in this process, from the consumed position
        _same(ref.next(), w.next())
        start = ref.state_dict()
        later = [ref.next() for _ in range(4)]
        w.load_state_dict(start)
        for b in later:
            _same(b, w.next())
    finally:
        w.close()


def test_ddp_slices_are_unchanged_with_workers(folder):
    whole = Loader(load_data(f"folder:{folder}?size=8"), 4, seed=5)
    spec = f"folder:{folder}?size=8"
    ranks = [Loader(load_data(spec), 2, seed=5, rank=r, world_size=2, workers=1) for r in (0, 1)]
    try:
        for _ in range(8):
            g = whole.next()
            parts = [r.next() for r in ranks]
            assert torch.equal(torch.cat([p.x for p in parts]), g.x)
            assert torch.equal(torch.cat([p.y for p in parts]), g.y)
    finally:
        for r in ranks:
            r.close()


def _celeba(root, n=9):
    names = ["Smiling", "Male"]
    lines = [str(n), " ".join(names)]
    rng = np.random.RandomState(1)
    for i in range(n):
        fn = f"{i + 1:06d}.jpg"
        _write(str(root / "img_align_celeba" / fn), rng.randint(0, 256, (14, 11, 3)).astype(np.uint8))
        lines.append(f"{fn} {'1' if i % 3 else '-1'} -1")
    (root / "list_attr_celeba.txt").write_text("\n".join(lines) + "\n")
    (root / "list_eval_partition.txt").write_text("".join(f"{i + 1:06d}.jpg 0\n" for i in range(n)))


def _pix2pix(root, n=7):
    rng = np.random.RandomState(2)
    for i in range(n):
        _write(str(root / f"{i}.png"), rng.randint(0, 256, (6, 12, 3)).astype(np.uint8))


@pytest.mark.parametrize("kind", ["celeba-two-domain", "pix2pix", "mnist+folder"])
def test_two_domain_and_paired_files_with_workers(tmp_path, folder, kind):
    if kind == "celeba-two-domain":
        _celeba(tmp_path / "c")
        spec, spec_b = f"celeba:{tmp_path / 'c'}?attr=Smiling&size=8", None
    elif kind == "pix2pix":
        _pix2pix(tmp_path / "p")
        spec, spec_b = f"pix2pix:{tmp_path / 'p'}?size=4&direction=BtoA", None
    else:
        spec, spec_b = "digits8?channels=3", f"folder:{folder}?size=8"
    ref = Loader(load_data(spec, spec_b=spec_b), 3, seed=4)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the lazy half makes the pair worker-able: no "ignored" warning
        w = Loader(load_data(spec, spec_b=spec_b), 3, seed=4, workers=2)
    try:
        assert w.workers == 2
        for _ in range(7):
            _same(ref.next(), w.next())
            assert w.state_dict() == ref.state_dict()
    finally:
        w.close()


def test_decode_cache_decodes_each_file_once_and_changes_nothing(folder, monkeypatch):
    calls = []
    real = data_files._decode
    monkeypatch.setattr(data_files, "_decode", lambda path, *a: calls.append(path) or real(path, *a))
    cached = load_data(f"folder:{folder}?size=8")
    plain = load_data(f"folder:{folder}?size=8&cache=0")
    a, b = Loader(cached, 6, seed=7), Loader(plain, 6, seed=7)
    for _ in range(12):  # 72 rows: three epochs and a bit
        _same(a.next(), b.next())
    n_plain = 72
    assert len(calls) == 23 + n_plain  # the cached set decoded each file once
    assert len(set(calls)) == 23 and cached.lazy_rows.cached == 23 and plain.lazy_rows.cached == 0
    assert len(cached.lazy_rows.plan(torch.arange(23))["decode"]) == 0


def test_the_cache_is_filled_from_the_workers_results_then_the_workers_stop(folder):
    before = _children()
    d = load_data(f"folder:{folder}?size=8")
    ref = Loader(load_data(f"folder:{folder}?size=8&cache=0"), 6, seed=0)
    with Loader(d, 6, seed=0, workers=2) as w:
        for _ in range(3):
            _same(ref.next(), w.next())
        assert d.lazy_rows.cached == 18 and not d.lazy_rows.complete
        assert len(_children() - before) >= 2
        _same(ref.next(), w.next())  # 24 rows: every file once
        assert d.lazy_rows.complete and _children() <= before  # nothing left to decode
        for _ in range(8):
            _same(ref.next(), w.next())
            assert w.state_dict() == ref.state_dict()
        assert _children() <= before


def test_cache_that_does_not_fit_warns_and_decodes(folder, monkeypatch):
    monkeypatch.setattr(data_files, "_mem_available", lambda: 1000)
    with pytest.warns(UserWarning, match=r"decode cache of .* every epoch decodes the files"):
        d = load_data(f"folder:{folder}?size=8")
    assert not d.lazy_rows.cache
    Loader(d, 23).next()
    assert d.lazy_rows.cached == 0


def test_draft_mode_shrinks_large_jpegs_only(tmp_path, monkeypatch):
    import skimage.data

    photo = skimage.data.astronaut()  # 512 x 512
    _write(str(tmp_path / "j" / "a.jpg"), photo)
    _write(str(tmp_path / "j" / "b.png"), photo[:200, :300])
    full = load_data(f"folder:{tmp_path / 'j'}?size=32").batch(torch.arange(2)).x
    draft = load_data(f"folder:{tmp_path / 'j'}?size=32&draft=1").batch(torch.arange(2)).x
    assert torch.equal(full[1], draft[1])  # PNG: no draft mode, the same pixels
    diff = (full[0] - draft[0]).abs() * 127.5  # JPEG decoded at 1/8: a few grey levels apart
    assert 0 < diff.mean() < 8
    from PIL import JpegImagePlugin

    seen = []
    real = JpegImagePlugin.JpegImageFile.draft

    def spy(self, mode, size):
        seen.append(size)
        return real(self, mode, size)

    monkeypatch.setattr(JpegImagePlugin.JpegImageFile, "draft", spy)
    data_files._decode(str(tmp_path / "j" / "a.jpg"), "RGB", 32, 1.0, False, True)
    data_files._decode(str(tmp_path / "j" / "a.jpg"), "RGB", 300, 1.0, False, True)  # < 2x: no draft
    data_files._decode(str(tmp_path / "j" / "a.jpg"), "RGB", 32, 1.0, False, False)
    assert seen == [(32, 32)]
    with pytest.raises(ValueError, match="data option draft must be 0 or 1"):
        load_data(f"folder:{tmp_path / 'j'}?draft=2")
    with pytest.raises(ValueError, match=r"\['cache'\] do not apply"):
        load_data("digits8?cache=1")


def test_corrupt_file_error_names_it_in_this_process(folder):
    bad = folder / "a" / "04.jpg"
    bad.write_bytes(bad.read_bytes()[:40])  # a truncated JPEG
    before = _children()
    w = Loader(load_data(f"folder:{folder}?size=8&cache=0"), 23, seed=0, workers=2)
    with pytest.raises(DataError) as info:
        w.next()
    msg = str(info.value)
    assert msg.startswith(f"{bad}: cannot decode as an image") and "Traceback" not in msg
    assert type(info.value) is DataError
    w.close()
    assert _children() <= before
    with pytest.raises(DataError, match=r"04\.jpg: cannot decode"):  # the same error without workers
        Loader(load_data(f"folder:{folder}?size=8"), 23, seed=0).next()


def test_closed_loader_leaves_no_child_processes(folder):
    before = _children()
    w = Loader(load_data(f"folder:{folder}?size=8"), 4, workers=2)
    w.next()
    assert len(_children() - before) >= 2
    w.close()
    assert _children() <= before
    w.next()  # starts again from where it stopped
    assert len(_children() - before) >= 2
    with w:
        w.next()
    assert _children() <= before


def test_global_rng_is_untouched_by_the_workers(folder):
    torch.manual_seed(0)
    state = torch.get_rng_state()
    with Loader(load_data(f"folder:{folder}?size=8"), 4, workers=1) as w:
        w.next()
    assert torch.equal(torch.get_rng_state(), state)


def test_spawned_workers_get_everything_by_pickle(folder, monkeypatch):
    monkeypatch.setattr(data_core, "_MP_CONTEXT", "spawn")
    ref = Loader(load_data(f"folder:{folder}?size=8"), 5, seed=9)
    d = load_data(f"folder:{folder}?size=8")
    with Loader(d, 5, seed=9, workers=1) as w:
        for _ in range(6):
            _same(ref.next(), w.next())
    assert d.lazy_rows.cached == 23  # the cache stayed in this process


def test_in_memory_data_keeps_its_path(monkeypatch):
    before = _children()
    d = load_data("digits8")
    with pytest.warns(UserWarning, match=r"workers=1 ignored: 'digits8' is held in memory"):
        w = Loader(d, 4, seed=0, workers=1)
    assert w.workers == 0 and Loader(d, 4, workers=None).workers == 0
    b = w.next()
    assert _children() <= before
    idx = data_core._Stream(torch.arange(len(d)), 0, True).take(4)
    assert torch.equal(b.x, d.x[idx])


def test_workers_setting_is_checked():
    cores = usable_cores()
    assert check_workers(None) is None and check_workers(0) == 0 and check_workers(cores) == cores
    assert 1 <= default_workers() <= 16
    with pytest.raises(ValueError, match=r"workers must be >= 0"):
        check_workers(-1)
    with pytest.raises(ValueError, match=rf"workers={cores + 1} is more than the {cores} CPU cores"):
        check_workers(cores + 1)
    for bad in (1.5, True, "2"):
        with pytest.raises(TypeError, match="workers must be an int"):
            check_workers(bad)
    d = load_data("digits8")
    with pytest.raises(ValueError, match="workers must be >= 0"):
        Loader(d, 4, workers=-2)
    with pytest.raises(ValueError, match="prefetch must be a positive int"):
        Loader(d, 4, prefetch=0)


def test_default_workers_share_the_cores_among_local_ranks(monkeypatch):
    monkeypatch.setattr(data_core, "usable_cores", lambda: 16)
    assert default_workers() == 15
    monkeypatch.setattr(data_core, "usable_cores", lambda: 64)
    assert default_workers() == 16
    monkeypatch.setattr(data_core, "usable_cores", lambda: 16)
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "4")
    assert default_workers() == 3
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "16")
    assert default_workers() == 1


def test_batches_built_on_a_device_equal_the_cpu_ones(folder, tmp_path):
    d = load_data(f"folder:{folder}?size=8")
    assert Loader(d, 4, workers=1).gpu is None  # no pinned memory for a CPU target
    assert (Loader(d, 4, workers=1, device="cuda").gpu is not None) == torch.cuda.is_available()
    _pix2pix(tmp_path / "p")
    specs = [f"folder:{folder}?size=8", f"folder:{folder}?size=8&cache=0", f"pix2pix:{tmp_path / 'p'}?size=4"]
    for spec in specs:
        r = load_data(spec).lazy_rows
        rows = torch.tensor([5, 0, 3])
        host = r(rows)
        job = r.plan(rows)
        there = r.finish(job, r.work(job), device=torch.device("cpu"))  # the path a GPU takes
        assert host.keys() == there.keys()
        for k in host:
            assert torch.equal(host[k], there[k]) and there[k].is_contiguous(), k
    lut = data_files._lut(torch.device("cpu"))
    assert torch.equal(lut, (torch.arange(256, dtype=torch.float32) - 127.5) / 127.5)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_batches_equal_the_cpu_ones(folder, tmp_path):
    _pix2pix(tmp_path / "p")
    for spec in (f"folder:{folder}?size=8", f"pix2pix:{tmp_path / 'p'}?size=4&cache=0"):
        ref = Loader(load_data(spec), 5, seed=1)
        for workers in (0, 2):
            with Loader(load_data(spec), 5, seed=1, workers=workers, device="cuda") as w:
                for _ in range(6):
                    b = w.next()
                    assert b.x.is_cuda and b.x.dtype == torch.float32
                    _same(ref.next(), b.to("cpu"))


def test_training_with_workers_equals_training_without(folder, tmp_path):
    from pygan.train import train

    kw = dict(overrides=["width=4", "batch_size=4", "n_critic=2"], progress=False, tensorboard=False)
    kw.update(log_every=1, sample_every=0, ckpt_every=3)
    before = _children()
    a = train("wgan-gp", f"folder:{folder}?size=16", str(tmp_path / "a"), 5, workers=0, **kw)
    b = train("wgan-gp", f"folder:{folder}?size=16", str(tmp_path / "b"), 5, workers=2, **kw)
    assert _children() <= before
    for (k, v), w in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(v, w), k

    def rows(run):
        drop = ("time", "img_per_s")
        with open(tmp_path / run / "metrics.jsonl") as f:
            return [{k: v for k, v in json.loads(line).items() if k not in drop} for line in f]

    assert rows("a") == rows("b") and len(rows("a")) == 5
    # resume with workers from step 3 (a checkpoint taken while the workers were ahead of it)
    c = train("wgan-gp", f"folder:{folder}?size=16", str(tmp_path / "c"), 3, workers=2, **kw)
    del c
    c = train("wgan-gp", f"folder:{folder}?size=16", str(tmp_path / "c"), 5, workers=2, resume=True, **kw)
    for (k, v), w in zip(a.state_dict().items(), c.state_dict().values()):
        assert torch.equal(v, w), k


def test_corrupt_file_during_training_keeps_the_last_checkpoint(folder, tmp_path):
    from pygan.runs import load_checkpoint, run_paths
    from pygan.train import train

    root = tmp_path / "split"
    os.makedirs(root / "test")
    os.rename(folder, root / "train")
    os.rename(root / "train" / "a", root / "test" / "a")  # the test split (sample grids) stays clean
    bad = root / "train" / "b" / "17.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 30)
    before = _children()
    run = tmp_path / "run"
    kw = dict(overrides=["width=4", "batch_size=4", "n_critic=1"], progress=False, tensorboard=False)
    with pytest.raises(DataError, match=r"17\.png: cannot decode as an image"):
        train("wgan-gp", f"folder:{root}?size=16", str(run), 9, workers=2, log_every=1, ckpt_every=1, **kw)
    assert _children() <= before
    with open(run_paths(str(run))["metrics"]) as f:
        done = sum(1 for _ in f)
    assert 0 < done < 3  # 11 rows, 4 per step: the bad file comes up in step 2 or 3 (seed 0)
    assert load_checkpoint(run_paths(str(run))["last"])["step"] == done


def test_a_failing_step_ends_the_workers_with_the_run(folder, tmp_path, monkeypatch):
    from pygan.models.wgan_gp import WGANGP
    from pygan.train import train

    def boom(self, batch):
        raise RuntimeError("the step failed")

    monkeypatch.setattr(WGANGP, "training_step", boom)
    before = _children()
    kw = dict(overrides=["width=4", "batch_size=4", "n_critic=1"], progress=False, tensorboard=False)
    with pytest.raises(RuntimeError, match="the step failed") as info:
        train("wgan-gp", f"folder:{folder}?size=16", str(tmp_path / "r"), 3, workers=2, **kw)
    assert info.traceback  # the traceback (and its frames, the loader among them) is still alive here
    assert _children() <= before


def test_cli_workers_flag_errors_are_one_clear_line(tmp_path, capsys):
    from pygan.cli import main
    from pygan.train import TrainOptions

    base = ["train", "wgan-gp", "--data", "digits8", "--steps", "1", "--no-progress"]
    with pytest.raises(SystemExit) as e:  # an argparse usage error: one line, status 2
        main([*base, "--out", str(tmp_path / "a"), "--workers", "-1"])
    assert e.value.code == 2
    assert "pygan train: error: argument --workers: must be an int >= 0, got '-1'" in capsys.readouterr().err
    too_many = usable_cores() + 1
    assert main([*base, "--out", str(tmp_path / "b"), "--workers", str(too_many)]) == 2
    assert f"workers={too_many} is more than the" in capsys.readouterr().err
    assert not os.path.exists(tmp_path / "a") and not os.path.exists(tmp_path / "b")
    with pytest.raises(ValueError, match="workers must be >= 0"):
        TrainOptions(steps=1, workers=-1)
    assert TrainOptions(steps=1).workers is None
