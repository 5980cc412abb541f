"""PNG grids and point plots (Pillow)."""

import numpy as np
import pytest
import torch
from PIL import Image

from pygan.data.grid import make_grid, save_grid, save_points, to_uint8


def test_make_grid_layout():
    imgs = torch.stack([torch.full((1, 2, 3), float(i) / 10) for i in range(5)])
    g = make_grid(imgs, nrow=2, pad=1, pad_value=-1.0)
    assert g.shape == (1, 3 * 3 + 1, 2 * 4 + 1)
    assert torch.all(g[0, 0] == -1) and torch.all(g[0, :, 0] == -1)
    assert torch.all(g[0, 1:3, 1:4] == 0.0) and torch.all(g[0, 1:3, 5:8] == 0.1)
    assert torch.all(g[0, 4:6, 1:4] == 0.2) and torch.all(g[0, 7:9, 1:4] == 0.4)
    assert torch.all(g[0, 7:9, 5:8] == -1)  # the empty last tile
    with pytest.raises(ValueError, match="nrow must be a positive int"):
        make_grid(imgs, nrow=0)


def test_save_grid_roundtrip(tmp_path):
    imgs = torch.tensor([-1.0, 0.0, 1.0]).view(3, 1, 1, 1).expand(3, 3, 2, 2)
    path = save_grid(imgs, str(tmp_path / "sub" / "g.png"), nrow=3, pad=0)
    a = np.asarray(Image.open(path))
    assert a.shape == (2, 6, 3)
    assert a[0, 0, 0] == 0 and a[0, 2, 0] == 128 and a[0, 4, 0] == 255
    assert to_uint8(torch.zeros(1, 2, 2)).shape == (2, 2)
    big = save_grid(imgs[:, :1], str(tmp_path / "s.png"), pad=0, scale=3)
    assert Image.open(big).size == (18, 6) and Image.open(big).mode == "L"
    with pytest.raises(ValueError, match="1 or 3 channels"):
        save_grid(torch.zeros(1, 2, 2, 2), str(tmp_path / "x.png"))


def test_save_points(tmp_path):
    p = save_points(
        torch.tensor([[0.0, 0.0], [1.0, 1.0]]), str(tmp_path / "p.png"), [[1.0, 1.0]], size=21, extent=2
    )
    a = np.asarray(Image.open(p))
    assert a.shape == (21, 21, 3) and tuple(a[10, 10]) == (40, 90, 200)
    assert tuple(a[5, 15]) == (220, 30, 30)  # the centre (1, 1): row 5 (y up), column 15
