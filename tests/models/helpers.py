"""Shared test helpers for models."""


def record_updates(model) -> list:
    """Wraps ``model.update`` so that each call appends ``(name, before, after)``, where ``before`` and
    ``after`` map every parameter name to ``(weight, grad or None)`` clones taken around the update.
    Returns that (initially empty) list."""
    seen = []
    orig = model.update

    def snap():
        return {
            n: (p.detach().clone(), None if p.grad is None else p.grad.clone())
            for n, p in model.named_parameters()
        }

    def spy(name, loss):
        before = snap()
        orig(name, loss)
        seen.append((name, before, snap()))

    model.update = spy
    return seen


def loss_floats(logs: dict, finite: bool = True) -> dict[str, float]:
    """Checks the model contract for ``training_step``'s return value (detached 0-dim tensors, so the
    loop can keep them on the device; ``finite``: none NaN or inf) and returns them as floats."""
    import math

    import torch

    assert isinstance(logs, dict) and logs, logs
    for k, v in logs.items():
        assert isinstance(v, torch.Tensor), f"{k}: {type(v).__name__}, expected a 0-dim tensor"
        assert v.dim() == 0 and not v.requires_grad, f"{k}: shape {tuple(v.shape)}, grad {v.requires_grad}"
    out = {k: float(v) for k, v in logs.items()}
    if finite:
        assert all(math.isfinite(v) for v in out.values()), out
    return out
