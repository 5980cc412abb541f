"""Network building blocks shared by the systems: DCGAN-style conv decoder/encoder, MLPs, the
pix2pix U-Net generator and PatchGAN discriminator. Every network can return its intermediate
feature maps (``return_features=True``), which several papers' losses read: SCoGAN's feature
regulariser (the generators' first layers), ACL-GAN's feature-space reconstruction and IDVAE's
shared-layer features (a discriminator's penultimate layer), UU-Net's generator-to-discriminator
connections (a U-Net's encoder/decoder maps).

Conventions (DCGAN, Radford et al. 2016; pix2pix, Isola et al. 2017): 4x4 convolutions with stride 2
and padding 1 halve/double the side; ReLU in decoders, LeakyReLU(0.2) in encoders; weights
``N(0, 0.02)``, norm scales ``N(1, 0.02)``, biases 0 (:func:`init_dcgan`); ``tanh`` outputs in [-1, 1].
"""

from __future__ import annotations

import itertools
from typing import Literal, get_args

import torch
from torch import nn

from pygan.errors import ConfigError
from pygan.models.losses import reparameterize

__all__ = [
    "NORMS",
    "ConvDecoder",
    "ConvEncoder",
    "NormName",
    "PatchDiscriminator",
    "Squeeze",
    "UNet",
    "conv_plan",
    "init_dcgan",
    "mlp",
]

NormName = Literal["batch", "instance", "layer", "none"]
NORMS = get_args(NormName)


def conv_plan(size: int, what: str = "the DCGAN nets") -> tuple[int, int]:
    """``(b, k)`` with ``size = b * 2^k``, ``k`` as large as possible with ``b >= 3`` (k >= 2 needed)."""
    b, k = size, 0
    while b % 2 == 0 and b // 2 >= 3:
        b, k = b // 2, k + 1
    if k < 2:
        raise ConfigError(
            f"{what} need an image side b * 2^k with k >= 2 and b >= 3 (16, 28, 32, 64, ...), "
            f"got {size}; resize the data (e.g. ?size=32)"
        )
    return b, k


def init_dcgan(m: nn.Module) -> None:
    """DCGAN initialisation; use as ``net.apply(init_dcgan)``."""
    if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
        nn.init.normal_(m.weight, 0.0, 0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d, nn.InstanceNorm2d)) and m.weight is not None:
        nn.init.normal_(m.weight, 1.0, 0.02)
        nn.init.zeros_(m.bias)


def _check_norm(norm: str) -> None:
    if norm not in NORMS:
        raise ValueError(f"norm must be one of {list(NORMS)}, got {norm!r}")


def _norm2d(norm: str, channels: int, side: int) -> nn.Module:
    if norm == "batch":
        return nn.BatchNorm2d(channels)
    if norm == "instance":
        return nn.InstanceNorm2d(channels, affine=True)
    if norm == "layer":
        return nn.LayerNorm([channels, side, side])
    return nn.Identity()


def mlp(d_in: int, d_out: int, hidden: int, layers: int, act: type[nn.Module] = nn.ReLU) -> nn.Sequential:
    """``layers`` hidden layers of ``hidden`` units with ``act``, then a linear output."""
    dims = [d_in] + [hidden] * layers
    hidden_layers = [m for a, b in itertools.pairwise(dims) for m in (nn.Linear(a, b), act())]
    return nn.Sequential(*hidden_layers, nn.Linear(dims[-1], d_out))


class Squeeze(nn.Module):
    """``net(x).squeeze(1)``: one score per sample from a net with a single output unit (a point
    critic/discriminator ``mlp(d, 1, ...)``). The wrapped net is ``.net`` (state-dict keys
    ``net.*``)."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, x):
        return self.net(x).squeeze(1)


class ConvDecoder(nn.Module):
    """``z -> image`` (the DCGAN generator): ``Linear -> [norm] -> ReLU`` to ``(w 2^(k-1), b, b)``,
    then ``k`` transposed convs halving the channels (norm + ReLU between them), the last to
    ``channels`` with ``out_act`` (``"tanh"`` or ``"none"``).

    ``forward(z, return_features=True)`` also returns the ``k + 1`` stage outputs, first to last
    (the reshaped dense stage, each conv stage; the last is the image)."""

    def __init__(
        self,
        z_dim: int,
        channels: int,
        size: int,
        width: int = 64,
        norm: str = "batch",
        out_act: str = "tanh",
    ):
        super().__init__()
        _check_norm(norm)
        if norm == "layer":
            raise ValueError("ConvDecoder supports norm 'batch', 'instance' or 'none'")
        if out_act not in ("tanh", "none"):
            raise ValueError(f"out_act must be 'tanh' or 'none', got {out_act!r}")
        b, k = conv_plan(size, "ConvDecoder")
        c0 = width * 2 ** (k - 1)
        self.start = (c0, b)
        self.fc = nn.Linear(z_dim, c0 * b * b, bias=norm == "none")
        self.fc_norm = nn.BatchNorm1d(c0 * b * b) if norm == "batch" else nn.Identity()
        self.fc_post = _norm2d(norm, c0, b) if norm == "instance" else nn.Identity()
        self.blocks = nn.ModuleList()
        c, s = c0, b
        for i in range(k):
            last = i == k - 1
            out, s = (channels if last else c // 2), s * 2
            layers: list[nn.Module] = [nn.ConvTranspose2d(c, out, 4, 2, 1, bias=last or norm == "none")]
            if last:
                layers.append(nn.Tanh() if out_act == "tanh" else nn.Identity())
            else:
                layers += [_norm2d(norm, out, s), nn.ReLU()]
            self.blocks.append(nn.Sequential(*layers))
            c = out

    def forward(self, z: torch.Tensor, return_features: bool = False):
        c0, b = self.start
        h = torch.relu(self.fc_post(self.fc_norm(self.fc(z)).view(-1, c0, b, b)))
        feats = [h]
        for block in self.blocks:
            h = block(h)
            feats.append(h)
        return (h, feats) if return_features else h


class ConvEncoder(nn.Module):
    """``image -> vector`` (the DCGAN discriminator, or an encoder): ``k`` convs
    ``channels -> w -> 2w -> ...`` with LeakyReLU(0.2) (``norm`` after every conv but the first),
    then ``Linear -> out_dim``. ``out_dim=1`` returns ``[B]`` scores; ``out_dim=0`` has no head and
    returns the flattened last conv features.

    ``cond_dim > 0`` makes it conditional the IcGAN way (Perarnau et al. 2016; IDVAE's C-IDVAE): a
    condition vector ``cond`` ``[B, cond_dim]`` (e.g. a one-hot label) is tiled over the first conv
    stage's output and concatenated to it as extra channels, so the second conv sees it;
    ``forward(x, cond=...)`` then requires it.

    ``forward(x, return_features=True)`` also returns each conv stage's output, first to last (the
    last is the penultimate layer of a discriminator; the first is taken before the condition is
    concatenated)."""

    def __init__(
        self,
        channels: int,
        size: int,
        width: int = 64,
        out_dim: int = 1,
        norm: str = "none",
        cond_dim: int = 0,
    ):
        super().__init__()
        _check_norm(norm)
        if isinstance(cond_dim, bool) or not isinstance(cond_dim, int) or cond_dim < 0:
            raise ValueError(f"cond_dim must be an int >= 0, got {cond_dim!r}")
        b, k = conv_plan(size, "ConvEncoder")
        self.cond_dim = cond_dim
        self.blocks = nn.ModuleList()
        c, s = channels, size
        for i in range(k):
            out, s = width * 2**i, s // 2
            layers: list[nn.Module] = [nn.Conv2d(c, out, 4, 2, 1, bias=i == 0 or norm in ("none", "layer"))]
            if i > 0:
                layers.append(_norm2d(norm, out, s))
            layers.append(nn.LeakyReLU(0.2))
            self.blocks.append(nn.Sequential(*layers))
            c = out + (cond_dim if i == 0 else 0)
        self.feature_dim = c * b * b
        self.out_dim = out_dim
        self.head = nn.Linear(self.feature_dim, out_dim) if out_dim > 0 else None

    def forward(self, x: torch.Tensor, return_features: bool = False, cond: torch.Tensor | None = None):
        if self.cond_dim and (cond is None or cond.dim() != 2 or cond.shape != (x.shape[0], self.cond_dim)):
            got = None if cond is None else tuple(cond.shape)
            raise ValueError(
                f"cond must be [{x.shape[0]}, {self.cond_dim}] for this conditional encoder, got {got}"
            )
        if not self.cond_dim and cond is not None:
            raise ValueError("cond given to an unconditional ConvEncoder (build it with cond_dim > 0)")
        feats = []
        h = x
        for i, block in enumerate(self.blocks):
            h = block(h)
            feats.append(h)
            if i == 0 and self.cond_dim:
                tiled = cond.to(h.dtype)[:, :, None, None].expand(-1, -1, h.shape[2], h.shape[3])
                h = torch.cat([h, tiled], 1)
        out = h.flatten(1)
        if self.head is not None:
            out = self.head(out)
            if self.out_dim == 1:
                out = out.squeeze(1)
        return (out, feats) if return_features else out


class UNet(nn.Module):
    """The pix2pix U-Net generator (Isola et al. 2017, "U-Net 256"): ``depth`` down blocks
    (4x4/2 conv, norm except the first and the innermost, LeakyReLU(0.2)), as many up blocks
    (4x4/2 transposed conv, norm, ReLU, dropout 0.5 in the ``dropout`` innermost up blocks), skip
    connections concatenating each down block's output to the mirrored up block's input, and a final
    transposed conv to ``out_channels`` with ``tanh``. Channels ``w, 2w, 4w, 8w, 8w, ...`` (capped at
    ``8w``). ``depth`` defaults to ``log2(size)`` (down to 1x1, pix2pix's choice); ``size`` must be
    divisible by ``2^depth``.

    ``forward(x, return_features=True)`` also returns ``{"down": [...], "up": [...], "latent": z}``:
    the down block outputs (outermost first; the last is the bottleneck), the up block outputs
    (innermost first, before concatenation) and the map the decoder starts from (the bottleneck, or
    the sampled code with ``vae=True``, which adds ``"mu"`` and ``"logvar"``).

    Options for networks built on the U-Net (all off by default; the UU-Nets paper uses them for a
    discriminator U-Net that takes a generator's maps, and for U-Net VAEs):

    * ``out_act``: ``"tanh"`` (a generator) or ``"none"`` (raw output, e.g. a discriminator's map).
    * ``extra_down[i]``: channels of an extra map concatenated to the input of down block ``i``
      (index 0 sits beside the image); ``extra_up[j]``: to the input of up stage ``j`` (innermost
      first, after the U-Net's own skip: ``[h, skip, extra]``; stage ``depth - 1`` is the output
      layer). ``forward(..., extra_down=[t or None, ...], extra_up=[...])`` passes the maps; each
      must have the side of the input it joins.
    * ``vae=True``: a Gaussian bottleneck. 1x1 convs map the innermost down block's output to ``mu``
      and ``logvar`` (log sigma^2) with ``latent_channels`` channels (default: the bottleneck's);
      the decoder starts from ``z = mu + exp(logvar / 2) * eps`` (``eps ~ N(0, I)``, torch's global
      RNG) in training mode and from ``mu`` in eval mode.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        size: int,
        width: int = 64,
        depth: int | None = None,
        norm: str = "batch",
        dropout: int = 3,
        out_act: str = "tanh",
        extra_down: tuple[int, ...] | list[int] = (),
        extra_up: tuple[int, ...] | list[int] = (),
        vae: bool = False,
        latent_channels: int | None = None,
    ):
        super().__init__()
        _check_norm(norm)
        if norm == "layer":
            raise ValueError("UNet supports norm 'batch', 'instance' or 'none'")
        if out_act not in ("tanh", "none"):
            raise ValueError(f"out_act must be 'tanh' or 'none', got {out_act!r}")
        if depth is None:
            depth = size.bit_length() - 1
        if depth < 1 or size % (2**depth):
            raise ConfigError(
                f"UNet depth {depth} needs an image side divisible by 2^{depth}, got {size} "
                "(set depth=, or resize the data: ?size=)"
            )
        self.depth = depth
        self.extra_down = _extra_channels(extra_down, depth, "extra_down")
        self.extra_up = _extra_channels(extra_up, depth, "extra_up")
        chans = [min(width * 2**i, width * 8) for i in range(depth)]
        self.channels = tuple(chans)
        self.down = nn.ModuleList()
        c, s = in_channels, size
        for i, out in enumerate(chans):
            s //= 2
            inner = i == depth - 1
            layers: list[nn.Module] = [
                nn.Conv2d(c + self.extra_down[i], out, 4, 2, 1, bias=i == 0 or inner or norm == "none")
            ]
            if 0 < i and not inner:
                layers.append(_norm2d(norm, out, s))
            layers.append(nn.LeakyReLU(0.2))
            self.down.append(nn.Sequential(*layers))
            c = out
        if latent_channels is not None and not vae:
            raise ValueError("latent_channels needs vae=True")
        if latent_channels is not None and latent_channels < 1:
            raise ValueError(f"latent_channels must be >= 1, got {latent_channels}")
        self.vae = bool(vae)
        self.latent_channels = (latent_channels or chans[-1]) if vae else chans[-1]
        if vae:
            self.mu = nn.Conv2d(chans[-1], self.latent_channels, 1)
            self.logvar = nn.Conv2d(chans[-1], self.latent_channels, 1)
        self.up = nn.ModuleList()
        for j in range(depth - 1):  # innermost first; output feeds the next (outer) level
            i = depth - 1 - j  # the down level this up block mirrors
            c_in = self.latent_channels if j == 0 else 2 * chans[i]
            out = chans[i - 1]
            s *= 2
            layers = [
                nn.ConvTranspose2d(c_in + self.extra_up[j], out, 4, 2, 1, bias=norm == "none"),
                _norm2d(norm, out, s),
                nn.ReLU(),
            ]
            if j < dropout:
                layers.append(nn.Dropout(0.5))
            self.up.append(nn.Sequential(*layers))
        c_last = self.latent_channels if depth == 1 else 2 * chans[0]
        last: list[nn.Module] = [nn.ConvTranspose2d(c_last + self.extra_up[depth - 1], out_channels, 4, 2, 1)]
        if out_act == "tanh":
            last.append(nn.Tanh())
        self.out = nn.Sequential(*last)

    def _extras(self, given, counts: tuple[int, ...], name: str) -> list:
        if given is None:
            given = [None] * self.depth
        given = list(given)
        if len(given) != self.depth:
            raise ValueError(f"{name} must have {self.depth} entries (one per level), got {len(given)}")
        for k, (t, n) in enumerate(zip(given, counts)):
            if n == 0 and t is not None:
                raise ValueError(f"{name}[{k}]: this UNet was built without extra channels there")
            if n and t is None:
                raise ValueError(f"{name}[{k}]: this UNet expects a map of {n} channels there")
            if t is not None and (t.dim() != 4 or t.shape[1] != n):
                raise ValueError(f"{name}[{k}] must be [B, {n}, H, W], got {tuple(t.shape)}")
        return given

    @staticmethod
    def _join(parts: list) -> torch.Tensor:
        parts = [p for p in parts if p is not None]
        for p in parts[1:]:
            if p.shape[0] != parts[0].shape[0] or p.shape[-2:] != parts[0].shape[-2:]:
                raise ValueError(
                    f"a map of shape {tuple(p.shape)} cannot join one of shape {tuple(parts[0].shape)} "
                    "(batch and side must match)"
                )
        return parts[0] if len(parts) == 1 else torch.cat(parts, 1)

    def forward(
        self,
        x: torch.Tensor,
        return_features: bool = False,
        extra_down: list | tuple | None = None,
        extra_up: list | tuple | None = None,
    ):
        xd = self._extras(extra_down, self.extra_down, "extra_down")
        xu = self._extras(extra_up, self.extra_up, "extra_up")
        downs = []
        h = x
        for block, e in zip(self.down, xd):
            h = block(self._join([h, e]))
            downs.append(h)
        feats: dict = {"down": downs}
        if self.vae:
            mu, logvar = self.mu(h), self.logvar(h)
            h = reparameterize(mu, logvar, torch.randn_like(mu)) if self.training else mu
            feats.update(mu=mu, logvar=logvar)
        feats["latent"] = h
        ups = []
        for j, block in enumerate(self.up):
            skip = None if j == 0 else downs[len(downs) - 1 - j]
            h = block(self._join([h, skip, xu[j]]))
            ups.append(h)
        feats["up"] = ups
        y = self.out(self._join([h, downs[0] if self.up else None, xu[-1]]))
        return (y, feats) if return_features else y


def _extra_channels(counts, depth: int, name: str) -> tuple[int, ...]:
    counts = tuple(counts)
    if len(counts) > depth or any(isinstance(n, bool) or not isinstance(n, int) or n < 0 for n in counts):
        raise ValueError(f"{name} must list at most {depth} non-negative channel counts, got {counts}")
    return counts + (0,) * (depth - len(counts))


class PatchDiscriminator(nn.Module):
    """The pix2pix PatchGAN discriminator (70x70 receptive field with ``n_layers=3``): a 4x4/2 conv
    with LeakyReLU(0.2), ``n_layers - 1`` more 4x4/2 convs doubling the channels (capped at ``8w``)
    with norm, one 4x4/1 conv with norm, and a 4x4/1 conv to one logit per patch. Conditional use
    (pix2pix): pass the concatenation of input and output images, ``in_channels = C_in + C_out``.
    Returns logits ``[B, 1, h, w]``; ``return_features=True`` also returns each block's output."""

    def __init__(self, in_channels: int, width: int = 64, n_layers: int = 3, norm: str = "batch"):
        super().__init__()
        _check_norm(norm)
        if norm == "layer":
            raise ValueError("PatchDiscriminator supports norm 'batch', 'instance' or 'none'")

        def nrm(c):
            return {"batch": nn.BatchNorm2d, "instance": lambda c: nn.InstanceNorm2d(c, affine=True)}.get(
                norm, lambda c: nn.Identity()
            )(c)

        blocks = [nn.Sequential(nn.Conv2d(in_channels, width, 4, 2, 1), nn.LeakyReLU(0.2))]
        c = width
        for i in range(1, n_layers):
            out = min(width * 2**i, width * 8)
            blocks.append(
                nn.Sequential(nn.Conv2d(c, out, 4, 2, 1, bias=norm == "none"), nrm(out), nn.LeakyReLU(0.2))
            )
            c = out
        out = min(width * 2**n_layers, width * 8)
        blocks.append(
            nn.Sequential(nn.Conv2d(c, out, 4, 1, 1, bias=norm == "none"), nrm(out), nn.LeakyReLU(0.2))
        )
        self.blocks = nn.ModuleList(blocks)
        self.head = nn.Conv2d(out, 1, 4, 1, 1)

    def forward(self, x: torch.Tensor, return_features: bool = False):
        feats = []
        h = x
        for block in self.blocks:
            h = block(h)
            feats.append(h)
        y = self.head(h)
        return (y, feats) if return_features else y
