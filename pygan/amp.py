"""Mixed precision: the autocast dtypes ``--amp`` accepts, and float16's gradient scaler.

``--amp bf16`` (``TrainOptions(amp="bf16")``; ``amp=True`` means the same) runs the step under
bfloat16 autocast: bf16 has float32's exponent range, so gradients need no scaling. ``--amp fp16`` is
for GPUs without bf16 (V100, T4): float16's range is narrow (smallest normal 6e-5, largest 65504), so
small gradients underflow to zero unless the loss is scaled up before ``backward`` and the gradients
scaled back before the optimizer uses them. That is ``torch.amp.GradScaler``'s job; this module
installs one for the duration of a training step (:func:`grad_scaling`, entered by the loop's step
runner) and gives models the three calls that go through it:

* :func:`scaled_backward` — ``scaler.scale(loss).backward()`` (plain ``backward`` without a scaler);
* :func:`optimizer_step` — ``scaler.step(opt)`` for each optimizer the backward fed, then **one**
  ``scaler.update()`` (plain ``opt.step()`` without a scaler). ``GradScaler`` refuses a second
  ``step`` of the same optimizer before ``update``, and a WGAN-GP iteration steps its critic five
  times, so the scale is updated after every optimizer step, not once per iteration (as
  PyTorch-StudioGAN does);
* :func:`unscale_grads` — ``scaler.unscale_(opt)`` before a model reads its gradients (a norm, a
  sign flip), so that it sees true values.

:meth:`pygan.models.Model.update` uses them, so a model that updates through it needs nothing else.

The gradient penalty's inner gradient ``d critic(x_hat) / d x_hat`` is a backward pass through the
critic in float16 too: :func:`pygan.ops.gradient_penalty` multiplies the critic's output by the
current scale before ``autograd.grad`` and divides the gradient by it (in float32) before the norm
(PyTorch's AMP recipe for gradient penalties); :func:`penalty_grad_scale` is where it reads the
scale. Overflow anywhere (the inner gradient included) makes the parameters' gradients non-finite,
which the scaler sees: it skips that step and halves the scale.

``GradScaler.step`` reads its overflow flag on the host (``.item()``), so a float16 step cannot be
captured as a CUDA graph: with ``--cuda-graphs --amp fp16`` the loop says so in one line and runs
eagerly (the CUDA-graph fall-back).
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator

import torch

from pygan.errors import ConfigError

__all__ = [
    "AMP_MODES",
    "amp_dtype",
    "check_amp",
    "current_grad_scaler",
    "grad_scaling",
    "make_grad_scaler",
    "optimizer_step",
    "penalty_grad_scale",
    "scaled_backward",
    "unscale_grads",
]

AMP_MODES = ("bf16", "fp16")

_SCALER: contextvars.ContextVar[torch.amp.GradScaler | None] = contextvars.ContextVar(
    "pygan_grad_scaler", default=None
)


def check_amp(value) -> str | bool:
    """Normalises an ``amp`` setting: ``False``/``None``/``"none"``/``"off"`` -> ``False``;
    ``True``/``"bf16"`` -> ``"bf16"``; ``"fp16"`` -> ``"fp16"``. Anything else:
    :class:`~pygan.errors.ConfigError`."""
    if value is None or value is False:
        return False
    if value is True:
        return "bf16"
    if isinstance(value, str):
        v = value.strip().lower()
        if v in ("", "none", "off", "false", "no"):
            return False
        if v in ("bf16", "bfloat16"):
            return "bf16"
        if v in ("fp16", "float16", "half"):
            return "fp16"
    raise ConfigError(f"amp must be False, 'bf16' (or True) or 'fp16', got {value!r}")


def amp_dtype(value) -> torch.dtype | None:
    """The autocast dtype of an ``amp`` setting (None: no autocast)."""
    mode = check_amp(value)
    return {False: None, "bf16": torch.bfloat16, "fp16": torch.float16}[mode]


def make_grad_scaler(value, device: torch.device) -> torch.amp.GradScaler | None:
    """A ``GradScaler`` for ``amp="fp16"`` on ``device`` (PyTorch's defaults: initial scale 2^16,
    halved on overflow, doubled after 2,000 clean steps); None for bf16 or no autocast."""
    if check_amp(value) != "fp16":
        return None
    return torch.amp.GradScaler(torch.device(device).type)


@contextlib.contextmanager
def grad_scaling(scaler: torch.amp.GradScaler | None) -> Iterator[None]:
    """Makes ``scaler`` the one :func:`scaled_backward`, :func:`optimizer_step`,
    :func:`unscale_grads` and the gradient penalty use inside the block (None: none)."""
    token = _SCALER.set(scaler)
    try:
        yield
    finally:
        _SCALER.reset(token)


def current_grad_scaler() -> torch.amp.GradScaler | None:
    """The scaler :func:`grad_scaling` installed, or None."""
    return _SCALER.get()


def scaled_backward(loss: torch.Tensor, **kwargs) -> None:
    """``loss.backward(**kwargs)``, with ``loss`` multiplied by the current scale when a scaler is
    installed."""
    scaler = _SCALER.get()
    (loss if scaler is None else scaler.scale(loss)).backward(**kwargs)


def unscale_grads(optimizer: torch.optim.Optimizer) -> None:
    """Divides ``optimizer``'s gradients by the current scale (once per step; no-op without a
    scaler): call it before reading gradients, e.g. for a norm."""
    scaler = _SCALER.get()
    if scaler is not None:
        scaler.unscale_(optimizer)


def optimizer_step(*optimizers: torch.optim.Optimizer) -> None:
    """Steps each optimizer (through the scaler when one is installed: skipped if its gradients are
    not finite), then updates the scale once."""
    scaler = _SCALER.get()
    if scaler is None:
        for opt in optimizers:
            opt.step()
        return
    for opt in optimizers:
        scaler.step(opt)
    scaler.update()


def penalty_grad_scale(device: torch.device | str) -> torch.Tensor | None:
    """The current loss scale as a 0-dim float32 tensor on ``device`` (no host read), or None when
    no scaler is installed."""
    scaler = _SCALER.get()
    if scaler is None:
        return None
    return scaler.scale(torch.ones((), device=device, dtype=torch.float32))
