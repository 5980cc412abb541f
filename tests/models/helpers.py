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
