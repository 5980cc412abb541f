"""Sharing a trained generator without pickle (``pygan export RUN --out G.safetensors`` and
:func:`load_generator`), and samples as individual PNG files for other FID tools
(``pygan sample RUN --png-dir DIR --n N``: :func:`write_png_samples`).

The file is a `safetensors <https://github.com/huggingface/safetensors>`_ file (tensors and a string
metadata header; loading it runs no code, unlike a ``torch.save`` pickle) holding the state (parameters
and buffers) of the model's output networks — ``generator_networks``: the generator, decoder, encoder
of an autoencoder, coupled generators, ... never a critic — with the generator EMA's weights by default
(``--no-ema``: the trained ones). Its metadata holds what rebuilds the networks:

``format``         ``"pygan-generator-1"``
``config``         the run's ``config.json`` (model name, model Config, data spec, DataInfo) as JSON
``networks``       JSON list of the exported network names
``weights``        ``"ema"`` or ``"raw"``
``step``           the training step of the checkpoint
``pygan_version``  the exporting pygan's version

:func:`load_generator` rebuilds the registered model from that config, loads the tensors into its
output networks (strictly: every tensor of those networks must be there) and removes the other
networks (critics, discriminators), so ``model.sample(n)`` works and nothing untrained is left to
be mistaken for a trained network.

safetensors is a dependency of pygan (a ~0.5 MB wheel without dependencies of its own); an
environment installed without it gets an ``ImportError`` naming it.
"""

from __future__ import annotations

import json
import os

import torch

from pygan.errors import ConfigError

__all__ = ["EXPORT_FORMAT", "export_model", "export_run", "load_generator", "write_png_samples"]

EXPORT_FORMAT = "pygan-generator-1"


def _safetensors():
    try:
        import safetensors.torch as st
    except ImportError as exc:  # pragma: no cover - a dependency; missing only in odd environments
        raise ImportError(
            "exporting and loading generators needs the safetensors package: pip install safetensors"
        ) from exc
    return st


def export_model(model, run_config: dict, path: str, *, weights: str = "raw", step: int = 0) -> str:
    """Writes ``model``'s output networks (its :attr:`~pygan.models.Model.generator_networks`) to
    ``path`` as safetensors, with ``run_config`` (a run's ``config.json`` dict: ``model``,
    ``model_config``, ``data``, ``data_info``) in the metadata. Returns ``path``."""
    import pygan

    st = _safetensors()
    names = model.output_networks()
    if not names:
        raise ValueError(f"model {model.name!r} names no generator networks to export (generator_networks)")
    for key in ("model", "model_config", "data_info"):
        if key not in run_config:
            raise ValueError(f"run_config must be a run's config.json dict with {key!r}")
    prefixes = tuple(f"{n}." for n in names)
    tensors = {
        k: v.detach().to("cpu").contiguous().clone()
        for k, v in model.state_dict().items()
        if k.startswith(prefixes)
    }
    meta = {
        "format": EXPORT_FORMAT,
        "config": json.dumps(
            {k: run_config[k] for k in ("model", "model_config", "data", "data_info") if k in run_config}
        ),
        "networks": json.dumps(names),
        "weights": str(weights),
        "step": str(int(step)),
        "pygan_version": pygan.__version__,
    }
    d = os.path.dirname(os.path.abspath(path))
    os.makedirs(d, exist_ok=True)
    tmp = f"{path}.tmp{os.getpid()}"
    st.save_file(tensors, tmp, metadata=meta)
    os.replace(tmp, path)
    return path


def export_run(run_dir: str, out: str, *, ema: bool = True, checkpoint: str | None = None) -> tuple[str, str]:
    """``pygan export RUN --out FILE``: the run's output networks (EMA weights when the run kept an
    EMA and ``ema``) to ``out``. Returns ``(out, weights)`` with weights ``"ema"`` or ``"raw"``."""
    from pygan.runs import load_run

    if not str(out).endswith(".safetensors"):
        raise ConfigError(f"--out must name a .safetensors file, got {out!r}")
    model, _, _ = load_run(run_dir, checkpoint=checkpoint, ema=ema)
    export_model(model, model.run_config, out, weights=model.weights, step=model.trained_steps)
    return out, model.weights


def _drop_other_networks(model, names: list[str]) -> None:
    """Sets every network of ``model`` outside ``names`` (and their ancestors) to None: the top-level
    children that hold none of them, and the siblings of nested ones (``acl.code_discriminator`` when
    only ``acl.code_generator`` is exported)."""
    keep = set(names)
    ancestors = {".".join(n.split(".")[:i]) for n in names for i in range(1, n.count(".") + 1)}

    def prune(module, prefix: str) -> None:
        for child_name, child in list(module.named_children()):
            full = f"{prefix}{child_name}"
            if full in keep:
                continue
            if full in ancestors:
                prune(child, full + ".")
            elif any(True for _ in child.parameters()):
                setattr(module, child_name, None)

    prune(model, "")


def load_generator(path: str, device: str | torch.device = "cpu"):
    """Rebuilds the model of a file written by ``pygan export`` (or :func:`export_model`) with its
    output networks' weights, the other networks removed, on ``device``, in eval mode, without
    gradients. ``model.sample(n, generator=...)`` draws from it (image-to-image models translate
    ``batch=``); ``model.weights`` says ``"ema"`` or ``"raw"``, ``model.trained_steps`` the step."""
    from pygan.runs import build_run_model

    st = _safetensors()
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"{path}: no such file (expected a .safetensors file written by pygan export)"
        )
    try:
        from safetensors import safe_open

        with safe_open(path, framework="pt") as f:
            meta = f.metadata() or {}
    except Exception as exc:
        raise ValueError(f"{path}: not a readable safetensors file ({exc})") from exc
    if meta.get("format") != EXPORT_FORMAT:
        raise ValueError(f"{path}: not a pygan generator file (metadata format {meta.get('format')!r})")
    cfg = json.loads(meta["config"])
    names = json.loads(meta["networks"])
    model = build_run_model(cfg)
    _drop_other_networks(model, names)
    tensors = st.load_file(path, device="cpu")
    own = model.state_dict()
    prefixes = tuple(f"{n}." for n in names)
    want = {k for k in own if k.startswith(prefixes)}
    missing, unexpected = sorted(want - set(tensors)), sorted(set(tensors) - want)
    if missing or unexpected:
        raise ValueError(
            f"{path}: its tensors do not fit model {cfg['model']!r}'s networks {names}: "
            f"missing {missing[:3]}, unexpected {unexpected[:3]}"
        )
    with torch.no_grad():
        for k, v in tensors.items():
            if own[k].shape != v.shape:
                raise ValueError(f"{path}: {k} has shape {tuple(v.shape)}, expected {tuple(own[k].shape)}")
            own[k].copy_(v)
    model.to(torch.device(device)).eval()
    model.requires_grad_(False)
    model.weights = meta.get("weights", "raw")
    model.trained_steps = int(meta.get("step", 0))
    return model


# ---- samples as PNG files ---------------------------------------------------------------------------


def _png_targets(out_dir: str, parts: list[str], overwrite: bool) -> list[str]:
    """The folders to write (``out_dir``, or one subfolder per domain), emptied of PNG files when
    ``overwrite``; ``FileExistsError`` when one is not empty and not ``overwrite``."""
    from pathlib import Path

    root = Path(out_dir)
    if root.exists() and not root.is_dir():
        raise ValueError(f"--png-dir {out_dir}: exists and is not a directory")
    if root.is_dir() and any(root.iterdir()):
        if not overwrite:
            raise FileExistsError(
                f"--png-dir {out_dir} is not empty; pass --overwrite to replace its PNG files, or choose "
                "an empty or new directory (FID tools read every image in the folder)"
            )
    dirs = [root / p for p in parts] if parts else [root]
    for d in dirs:
        if overwrite and d.is_dir():
            for f in d.glob("*.png"):
                f.unlink()
            leftover = [f.name for f in d.iterdir() if f.suffix.lower() in (".jpg", ".jpeg", ".bmp", ".webp")]
            if leftover:
                raise FileExistsError(
                    f"--png-dir {d}: holds other images ({leftover[:3]}) that --overwrite does not remove"
                )
        d.mkdir(parents=True, exist_ok=True)
    return [str(d) for d in dirs]


def write_png_samples(
    model,
    data,
    out_dir: str,
    n: int,
    *,
    seed: int = 0,
    overwrite: bool = False,
    batch_size: int = 256,
) -> list[str]:
    """Writes ``n`` samples of ``model`` as individual 8-bit PNG files ``000000.png``, ... in
    ``out_dir`` (grey or RGB; the pixels of :func:`pygan.metrics.quantize_uint8`), for pytorch-fid,
    torch-fidelity, clean-fid and friends. Returns the paths written.

    * image models: ``model.sample`` with a generator seeded by ``seed`` (the draws ``pygan eval``
      scores for the same seed and batch size);
    * two-domain (coupled) models: ``n`` per domain, in one subfolder per domain (``A/``, ``B/`` or
      the data's domain names), the pairs sharing their ``z``;
    * image-to-image models: ``translate`` of the first ``n`` test inputs (``n`` at most the test
      split's size);
    * points: refused (not images).

    A non-empty ``out_dir`` is refused unless ``overwrite`` (which deletes the PNG files in it first,
    so the folder holds exactly these ``n``)."""
    from pygan.data.grid import to_uint8
    from pygan.metrics._util import _sample_model

    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive int, got {n!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    info = model.info
    if info.kind == "points":
        raise ValueError(f"--png-dir: {model.name} makes 2-D points, not images")
    parts: list[str] = []
    if info.kind == "two-domain":
        parts = [str(d) for d in info.meta.get("domains", ["A", "B"])]
        if len(set(parts)) != len(parts) or not all(
            p.replace("-", "").replace("_", "").isalnum() for p in parts
        ):
            parts = ["A", "B"]
    dirs = _png_targets(out_dir, parts, overwrite)
    width = max(6, len(str(n - 1)))
    written: list[str] = []

    def save(images: torch.Tensor, folder: str, first: int) -> None:
        from PIL import Image

        for i, img in enumerate(images):
            path = os.path.join(folder, f"{first + i:0{width}d}.png")
            Image.fromarray(to_uint8(img)).save(path)
            written.append(path)

    g = torch.Generator(device=model.device).manual_seed(seed)
    if info.kind == "paired":
        translate = getattr(model, "translate", None)
        if translate is None:
            raise ValueError(f"--png-dir: {model.name} has no translate(x) for its image-to-image data")
        test = data.load("test")
        if n > len(test):
            raise ValueError(f"--png-dir: --n {n} exceeds the {len(test)} inputs of the test split")
        for lo in range(0, n, batch_size):
            rows = test.rows(torch.arange(lo, min(n, lo + batch_size)))
            with torch.no_grad():
                out = translate(rows["x"].to(model.device))
            save(out.detach().float().cpu(), dirs[0], lo)
        return written
    done = 0
    while done < n:
        b = min(batch_size, n - done)
        out = _sample_model(model, b, g, b)
        outs = list(out) if isinstance(out, tuple) else [out]
        if len(outs) != len(dirs):
            raise ValueError(
                f"--png-dir: {model.name}.sample returned {len(outs)} image sets, expected {len(dirs)}"
            )
        for images, folder in zip(outs, dirs):
            if images.dim() != 4 or images.shape[1] not in (1, 3):
                raise ValueError(
                    f"--png-dir: samples of shape {tuple(images.shape)} are not 1- or 3-channel images"
                )
            save(images, folder, done)
        done += b
    return written
