"""Local-file loaders on small files the tests write: MNIST idx(.gz), SVHN .mat, image folders,
CelebA, pix2pix pairs; the registry's specs; and the errors for missing or malformed files."""

import gzip
import os
import struct

import numpy as np
import pytest
import torch
from PIL import Image

from pygan.data import DataError, Loader, load_data, parse_spec, read_idx


def _idx(path, array, gz=False, magic_type=0x08):
    head = bytes([0, 0, magic_type, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    raw = head + array.astype(np.uint8).tobytes()
    with open(path, "wb") as f:
        f.write(gzip.compress(raw) if gz else raw)


@pytest.fixture
def mnist_dir(tmp_path):
    rng = np.random.RandomState(0)
    for stem, n, gz in (("train", 6, True), ("t10k", 4, False)):
        imgs = rng.randint(0, 256, size=(n, 28, 28)).astype(np.uint8)
        imgs[0, 0, 0], imgs[0, 0, 1] = 0, 255
        suffix = ".gz" if gz else ""
        _idx(tmp_path / f"{stem}-images-idx3-ubyte{suffix}", imgs, gz)
        _idx(tmp_path / f"{stem}-labels-idx1-ubyte{suffix}", np.arange(n) % 10, gz)
    return tmp_path


def test_mnist_idx_values_labels_and_splits(mnist_dir):
    d = load_data(f"mnist:{mnist_dir}")
    assert d.kind == "images" and d.x.shape == (6, 1, 28, 28) and d.num_classes == 10
    raw = read_idx(str(mnist_dir / "train-images-idx3-ubyte.gz"))
    assert torch.allclose(d.x[:, 0], torch.from_numpy((raw.astype(np.float32) - 127.5) / 127.5))
    assert d.x[0, 0, 0, 0] == -1.0 and d.x[0, 0, 0, 1] == 1.0
    assert torch.equal(d.y, torch.arange(6))
    t = load_data(str(mnist_dir), "test")  # a bare path is recognised
    assert t.x.shape == (4, 1, 28, 28)
    a = load_data(f"mnist:{mnist_dir}?size=32&channels=3", "all")
    assert a.x.shape == (10, 3, 32, 32) and len(a.y) == 10


def test_mnist_single_file_finds_its_labels(mnist_dir):
    d = load_data(f"mnist:{mnist_dir / 't10k-images-idx3-ubyte'}")
    assert torch.equal(d.y, torch.arange(4))


def test_mnist_errors_name_the_path(tmp_path, mnist_dir):
    bad = tmp_path / "bad-images-idx3-ubyte"
    bad.write_bytes(b"\x01\x02\x03\x04")
    with pytest.raises(DataError, match=f"{bad}.*not an idx file"):
        load_data(f"mnist:{bad}")
    trunc = tmp_path / "trunc-images-idx3-ubyte"
    _idx(trunc, np.zeros((2, 3, 3)))
    trunc.write_bytes(trunc.read_bytes()[:-1])
    with pytest.raises(DataError, match=r"expected .* for dimensions"):
        read_idx(str(trunc))
    with pytest.raises(DataError, match="rank 1, expected rank 3"):
        read_idx(str(mnist_dir / "t10k-labels-idx1-ubyte"), ndim=3)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match="expected train-images-idx3-ubyte"):
        load_data(f"mnist:{empty}")
    with pytest.raises(FileNotFoundError, match=r"nope.*no such file"):
        load_data(f"mnist:{tmp_path / 'nope'}")
    gz = tmp_path / "cut-images-idx3-ubyte.gz"
    gz.write_bytes(gzip.compress(b"\x00" * 100)[:-8])
    with pytest.raises(DataError, match="gzip"):
        read_idx(str(gz))
    wrong = tmp_path / "n"
    wrong.mkdir()
    _idx(wrong / "train-images-idx3-ubyte", np.zeros((3, 2, 2)))
    _idx(wrong / "train-labels-idx1-ubyte", np.zeros(2))
    with pytest.raises(DataError, match="2 labels for 3 images"):
        load_data(f"mnist:{wrong}")


def _svhn(path, n=5):
    from scipy.io import savemat

    rng = np.random.RandomState(1)
    X = rng.randint(0, 256, size=(32, 32, 3, n)).astype(np.uint8)
    y = (np.arange(n) % 10 + 1).reshape(-1, 1)  # 1..10, 10 = digit 0
    savemat(path, {"X": X, "y": y})
    return X, y


def test_svhn_mat_file_and_directory(tmp_path):
    X, _ = _svhn(tmp_path / "train_32x32.mat", 12)
    d = load_data(str(tmp_path / "train_32x32.mat"))
    assert d.x.shape == (12, 3, 32, 32)
    assert torch.allclose(d.x[3, 1], torch.from_numpy((X[:, :, 1, 3].astype(np.float32) - 127.5) / 127.5))
    assert d.y.tolist() == [1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1, 2]
    d2 = load_data(f"svhn:{tmp_path}?size=16&channels=1")
    assert d2.x.shape == (12, 1, 16, 16)
    with pytest.raises(FileNotFoundError, match=r"test_32x32\.mat"):
        load_data(f"svhn:{tmp_path}", "test")


def test_svhn_errors(tmp_path):
    junk = tmp_path / "junk.mat"
    junk.write_bytes(b"this is not a mat file at all" * 10)
    with pytest.raises(DataError, match=f"{junk}.*not a readable MATLAB"):
        load_data(str(junk))
    from scipy.io import savemat

    savemat(tmp_path / "other.mat", {"A": np.zeros(3)})
    with pytest.raises(DataError, match="expected variables 'X' and 'y'"):
        load_data(f"svhn:{tmp_path / 'other.mat'}")


def _png(path, value, size=(6, 4), mode="RGB"):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    arr = np.full((size[1], size[0], 3) if mode == "RGB" else (size[1], size[0]), value, dtype=np.uint8)
    Image.fromarray(arr).save(path)


def test_image_folder_with_classes_and_splits(tmp_path):
    for split in ("train", "test"):
        _png(tmp_path / split / "cat" / "a.png", 0)
        _png(tmp_path / split / "cat" / "b.png", 255)
        _png(tmp_path / split / "dog" / "c.png", 51)
    (tmp_path / "train" / "dog" / "notes.txt").write_text("ignored")
    d = load_data(f"folder:{tmp_path}?size=4")
    assert d.kind == "images" and len(d) == 3 and d.num_classes == 2 and d.meta["classes"] == ["cat", "dog"]
    b = Loader(d, 3, shuffle=False).next()
    assert b.x.shape == (3, 3, 4, 4) and b.y.tolist() == [0, 0, 1]
    assert torch.allclose(b.x[:, 0, 0, 0], torch.tensor([-1.0, 1.0, (51 - 127.5) / 127.5]))
    assert len(load_data(f"folder:{tmp_path}?size=4", "test")) == 3
    assert len(load_data(f"folder:{tmp_path}?size=4", "all")) == 6


def test_image_folder_flat_gray(tmp_path):
    for i in range(3):
        _png(tmp_path / f"{i}.png", 100, (5, 5), mode="L")
    d = load_data(f"{tmp_path}?size=8")  # bare path -> folder
    assert d.num_classes is None and d.shape == (1, 8, 8)
    assert torch.allclose(
        d.batch(torch.arange(3)).x, torch.full((3, 1, 8, 8), (100 - 127.5) / 127.5), atol=1e-6
    )


def test_image_folder_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no images found"):
        load_data(f"folder:{tmp_path / 'empty'}")
    _png(tmp_path / "bad" / "ok.png", 0)
    (tmp_path / "bad" / "zz.png").write_bytes(b"not a png")
    d = load_data(f"folder:{tmp_path / 'bad'}?size=4")
    with pytest.raises(DataError, match=r"zz.png: cannot decode as an image"):
        d.batch(torch.tensor([0, 1]))


def _celeba(root, n=6, partition=True):
    names = ["Smiling", "Male", "Eyeglasses"]
    lines = [str(n), " ".join(names)]
    for i in range(n):
        fn = f"{i + 1:06d}.png"
        _png(root / "img_align_celeba" / fn, 20 * i, (10, 12))
        vals = ["1" if i % 2 else "-1", "-1", "1" if i == 0 else "-1"]
        lines.append(f"{fn}  " + " ".join(vals))
    (root / "list_attr_celeba.txt").write_text("\n".join(lines) + "\n")
    if partition:
        part = [f"{i + 1:06d}.png {0 if i < 4 else 2}" for i in range(n)]
        (root / "list_eval_partition.txt").write_text("\n".join(part) + "\n")


def test_celeba_two_domains_on_an_attribute(tmp_path):
    _celeba(tmp_path)
    d = load_data(f"celeba:{tmp_path}?attr=Smiling&size=8")
    assert d.kind == "two-domain" and len(d) == 4 and d.domain.tolist() == [0, 1, 0, 1]
    assert d.meta["domains"] == ["not Smiling", "Smiling"]
    b = Loader(d, 2, seed=0).next()
    assert b.x.shape == b.x_b.shape == (2, 3, 8, 8)
    # domain A = rows 0, 2 (values 0, 40); domain B = rows 1, 3 (20, 60)
    a_vals = {round(float(v) * 127.5 + 127.5) for v in b.x[:, 0, 4, 4]}
    b_vals = {round(float(v) * 127.5 + 127.5) for v in b.x_b[:, 0, 4, 4]}
    assert a_vals <= {0, 40} and b_vals <= {20, 60}
    assert len(load_data(f"celeba:{tmp_path}?size=8", "test")) == 2
    assert load_data(str(tmp_path) + "?size=8").kind == "images"  # sniffed


def test_celeba_errors(tmp_path):
    _celeba(tmp_path, partition=False)
    with pytest.raises(ValueError, match="attr must be one of CelebA's attributes"):
        load_data(f"celeba:{tmp_path}?attr=Blond")
    with pytest.warns(UserWarning, match="list_eval_partition.txt not found"):
        assert len(load_data(f"celeba:{tmp_path}?size=8")) == 6
    (tmp_path / "list_attr_celeba.txt").write_text("2\nA B\n000001.png 1\n")
    with pytest.raises(
        DataError, match=r"list_attr_celeba\.txt: rows have 1 values for 2 attributes|malformed"
    ):
        load_data(f"celeba:{tmp_path}")
    os.remove(tmp_path / "list_attr_celeba.txt")
    with pytest.raises(FileNotFoundError, match=r"expected list_attr_celeba\.txt"):
        load_data(f"celeba:{tmp_path}")


def test_pix2pix_pairs(tmp_path):
    for i in range(3):
        a = np.zeros((8, 16, 3), dtype=np.uint8)
        a[:, :8] = 10 * i  # A, left
        a[:, 8:] = 200  # B, right
        os.makedirs(tmp_path / "train", exist_ok=True)
        os.makedirs(tmp_path / "val", exist_ok=True)
        Image.fromarray(a).save(tmp_path / "train" / f"{i}.png")
        Image.fromarray(a).save(tmp_path / "val" / f"{i}.png")
    d = load_data(f"pix2pix:{tmp_path}?size=4")
    b = d.batch(torch.arange(3))
    assert d.kind == "paired" and b.x.shape == b.target.shape == (3, 3, 4, 4)
    assert torch.allclose(b.x[:, 0, 0, 0], (torch.tensor([0.0, 10, 20]) - 127.5) / 127.5)
    assert torch.allclose(b.target, torch.full_like(b.target, (200 - 127.5) / 127.5))
    r = load_data(f"pix2pix:{tmp_path}?size=4&direction=BtoA", "val").batch(torch.arange(3))
    assert torch.equal(r.x, b.target) and torch.equal(r.target, b.x)


def test_pix2pix_wrong_layout(tmp_path):
    _png(tmp_path / "x.png", 0, (8, 8))
    with pytest.raises(DataError, match=r"x.png: a 8x8 image; expected A and B side by side"):
        load_data(f"pix2pix:{tmp_path}")


def test_two_datasets_become_two_domains(tmp_path, mnist_dir):
    _svhn(tmp_path / "s.mat", 5)
    d = load_data(f"mnist:{mnist_dir}?size=32&channels=3", spec_b=f"svhn:{tmp_path / 's.mat'}")
    assert d.kind == "two-domain" and len(d) == 11 and int(d.domain.sum()) == 5
    b = Loader(d, 2).next()
    assert b.x.shape == b.x_b.shape == (2, 3, 32, 32)
    with pytest.raises(ValueError, match=r"make them match with \?size= and \?channels="):
        load_data(f"mnist:{mnist_dir}", spec_b=f"svhn:{tmp_path / 's.mat'}")


def test_spec_parsing_and_errors(tmp_path):
    assert parse_spec("mnist:/a/b?size=32&channels=3") == ("mnist", "/a/b", {"size": 32, "channels": 3})
    assert parse_spec("digits16-edge") == (None, "digits16-edge", {})
    assert parse_spec("weird:thing")[0] is None  # unknown prefixes are part of the path
    with pytest.raises(ValueError, match="unknown data option 'colour'"):
        parse_spec("digits?colour=1")
    with pytest.raises(ValueError, match="size must be an int"):
        parse_spec("digits?size=big")
    with pytest.raises(ValueError, match=r"do not apply to 'ring8\?size=3'"):
        load_data("ring8?size=3")
    with pytest.raises(FileNotFoundError, match=r"neither a dataset name .* nor an existing path"):
        load_data("no-such-dataset")
    (tmp_path / "f.bin").write_bytes(b"x")
    with pytest.raises(DataError, match="cannot tell the format"):
        load_data(str(tmp_path / "f.bin"))
    with pytest.raises(ValueError, match="split must be"):
        load_data("digits", "validation")
