"""Batch, Dataset, DataInfo and the deterministic, resumable, rank-sliced Loader."""

import pytest
import torch

from pygan.data import Batch, DataInfo, Dataset, Loader


def _images(n=10, c=1, s=4, labels=True):
    x = torch.linspace(-1, 1, n * c * s * s).reshape(n, c, s, s)
    y = torch.arange(n) % 3 if labels else None
    return Dataset("toy", "images", x, y, num_classes=3 if labels else None)


def test_batch_split_fields_getitem():
    b = Batch(x=torch.arange(12.0).view(6, 2), y=torch.arange(6))
    assert set(b.fields()) == {"x", "y"}
    parts = b.split(3)
    assert [len(p) for p in parts] == [2, 2, 2]
    assert torch.equal(parts[1].x, b.x[2:4]) and torch.equal(parts[2].y, b.y[4:])
    assert torch.equal(b[:2].y, torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="cannot be split into 4"):
        b.split(4)
    with pytest.raises(ValueError, match="k must be a positive int"):
        b.split(0)


def test_dataset_validation():
    x = torch.zeros(4, 1, 2, 2)
    with pytest.raises(ValueError, match="kind must be one of"):
        Dataset("a", "video", x)
    with pytest.raises(ValueError, match="y has 3 rows but x has 4"):
        Dataset("a", "images", x, torch.zeros(3, dtype=torch.long))
    with pytest.raises(TypeError, match="float32"):
        Dataset("a", "images", x.double())
    with pytest.raises(ValueError, match="needs domain ids"):
        Dataset("a", "two-domain", x)
    with pytest.raises(ValueError, match="domain 0 and 1"):
        Dataset("a", "two-domain", x, domain=torch.zeros(4, dtype=torch.long))
    with pytest.raises(ValueError, match="needs targets"):
        Dataset("a", "paired", x)
    with pytest.raises(ValueError, match="exactly one of x"):
        Dataset("a", "images")


def test_datainfo_json_roundtrip():
    info = DataInfo("paired", (1, 8, 8), (3, 8, 8), None, None, {"task": "gray"})
    back = DataInfo.from_json(info.to_json())
    assert back == info and back.channels == 1 and back.size == 8


def test_loader_epochs_cover_every_row_once():
    d = _images(10)
    loader = Loader(d, 5, seed=3)
    seen = torch.cat([loader.next().x[:, 0, 0, 0] for _ in range(2)])
    assert torch.equal(seen.sort().values, d.x[:, 0, 0, 0].sort().values)
    # the next epoch is a different permutation of the same rows
    seen2 = torch.cat([loader.next().x[:, 0, 0, 0] for _ in range(2)])
    assert torch.equal(seen2.sort().values, seen.sort().values) and not torch.equal(seen, seen2)


def test_loader_crosses_epoch_boundaries_and_is_deterministic():
    d = _images(7)
    a, b = Loader(d, 3, seed=1), Loader(d, 3, seed=1)
    for _ in range(6):
        ba, bb = a.next(), b.next()
        assert torch.equal(ba.x, bb.x) and torch.equal(ba.y, bb.y)
    assert a.state_dict() == {"streams": [{"epoch": 2, "offset": 4}]}
    c = Loader(d, 3, seed=2)
    assert not all(torch.equal(Loader(d, 3, seed=1).next().x, c.next().x) for _ in range(3))


def test_loader_state_resumes_the_stream():
    d = _images(9)
    straight = Loader(d, 4, seed=0)
    expected = [straight.next().y for _ in range(6)]
    first = Loader(d, 4, seed=0)
    got = [first.next().y for _ in range(3)]
    resumed = Loader(d, 4, seed=0)
    resumed.load_state_dict(first.state_dict())
    got += [resumed.next().y for _ in range(3)]
    assert all(torch.equal(a, b) for a, b in zip(expected, got))


def test_loader_ranks_take_disjoint_slices_of_the_global_batch():
    d = _images(12)
    whole = Loader(d, 4, seed=5)
    r0, r1 = Loader(d, 2, seed=5, rank=0, world_size=2), Loader(d, 2, seed=5, rank=1, world_size=2)
    for _ in range(5):
        g = whole.next().x
        assert torch.equal(torch.cat([r0.next().x, r1.next().x]), g)
    with pytest.raises(ValueError, match="rank must be in"):
        Loader(d, 2, rank=2, world_size=2)
    with pytest.raises(ValueError, match="batch_size must be a positive int"):
        Loader(d, 0)


def test_two_domain_loader_draws_each_domain_independently():
    x = torch.arange(10.0).view(10, 1, 1, 1)
    dom = torch.tensor([0, 1] * 5)
    d = Dataset("two", "two-domain", x, torch.arange(10), domain=dom)
    loader = Loader(d, 3, seed=0)
    for _ in range(4):
        b = loader.next()
        assert (b.x.flatten() % 2 == 0).all() and (b.x_b.flatten() % 2 == 1).all()
        assert torch.equal(b.y, b.x.flatten().long()) and torch.equal(b.y_b, b.x_b.flatten().long())
    assert len(loader.state_dict()["streams"]) == 2


def test_fixed_rows_are_spread_and_stable():
    d = _images(10)
    b = d.fixed(4)
    assert torch.equal(b.y, (torch.tensor([0, 3, 6, 9]) % 3))
    assert torch.equal(d.fixed(4).x, b.x)
    assert len(d.fixed(50)) == 10
    with pytest.raises(ValueError, match="n must be a positive int"):
        d.fixed(0)


def test_lazy_dataset_fetches_rows():
    calls = []

    def fetch(rows):
        calls.append(rows.tolist())
        return {"x": rows.float().view(-1, 1, 1, 1), "y": rows}

    d = Dataset("lazy", "images", length=6, fetch=fetch, shape=(1, 1, 1))
    b = Loader(d, 3, shuffle=False).next()
    assert calls == [[0, 1, 2]] and torch.equal(b.y, torch.tensor([0, 1, 2]))
    assert d.info.shape == (1, 1, 1)
