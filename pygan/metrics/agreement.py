"""Semantic agreement of coupled generators (CoGAN / SCoGAN: the Soft-Coupled GANs paper) and per-domain FID.

A coupled generator maps one ``z`` to a pair ``(G1(z), G2(z))`` — e.g. a digit and its edge image.
If it learned the *joint* distribution, both images show the same digit. Agreement is the fraction of
pairs whose two images get the same class from a digits classifier.

Domains differ, so each side may need help before the classifier sees it:

* an **undo** transform maps a domain back to plain digits when that is possible — the negative
  domain ``x -> -x`` is its own inverse; a rotated domain rotates back;
* a **per-domain classifier** is needed when it is not — edge images ``dilate(x) - x`` lose the
  stroke interior. :func:`pygan.backbones.digits.train_domain_classifier` trains the pygan digits
  classifier on transformed digits (and caches it); pass it as that domain's classifier.

(The thesis behind the Soft-Coupled GANs paper evaluates with LPIPS only and uses its classifier as
a training loss; agreement is pygan's metric for the same question.)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from pygan.metrics._util import check_images, resolve_samples

__all__ = ["AgreementResult", "per_domain_fid", "semantic_agreement"]


@dataclass
class AgreementResult:
    agreement: float
    num_pairs: int
    labels: tuple[torch.Tensor, torch.Tensor] = field(repr=False)
    # confusion[i, j]: pairs labelled i in domain 1 and j in domain 2
    confusion: torch.Tensor = field(repr=False)

    def to_dict(self) -> dict:
        return {
            "agreement": self.agreement,
            "num_pairs": self.num_pairs,
            "confusion": self.confusion.tolist(),
        }


def _classify(
    x: torch.Tensor, classifier: Any, undo: Callable | None, batch_size: int, device: Any
) -> torch.Tensor:
    out = []
    with torch.no_grad():
        for i in range(0, x.shape[0], batch_size):
            b = x[i : i + batch_size].to(device=device, dtype=torch.float32)
            if undo is not None:
                b = undo(b)
            logits = classifier(b)
            out.append(logits.argmax(1).cpu() if logits.dim() == 2 else logits.long().cpu())
    return torch.cat(out)


def semantic_agreement(
    images_a: Any,
    images_b: Any | None = None,
    *,
    classifiers: Sequence[Any] | None = None,
    undo: Sequence[Callable | None] | None = None,
    num_classes: int = 10,
    batch_size: int = 256,
    device: str | torch.device = "cpu",
) -> AgreementResult:
    """Fraction of pairs ``(a_i, b_i)`` that get the same class.

    Args:
        images_a, images_b: ``[N, C, H, W]`` each (pair ``i`` came from the same ``z``); or pass a
            tuple ``(a, b)`` as ``images_a`` (what a coupled model's ``sample`` returns).
        classifiers: per domain, an ``nn.Module``/callable returning logits ``[N, K]`` (or labels
            ``[N]``), or ``None`` for the pygan digits classifier.
        undo: per domain, a callable applied to the images before classification (``None``: as is).
    """
    if images_b is None:
        if not (isinstance(images_a, (tuple, list)) and len(images_a) == 2):
            raise ValueError("pass images_a and images_b, or a pair (a, b) as images_a")
        images_a, images_b = images_a
    a = check_images(images_a, "images_a")
    b = check_images(images_b, "images_b")
    if a.shape[0] != b.shape[0]:
        raise ValueError(
            f"images_a and images_b must hold the same number of pairs, got {a.shape[0]} and {b.shape[0]}"
        )
    classifiers = list(classifiers) if classifiers is not None else [None, None]
    undo = list(undo) if undo is not None else [None, None]
    if len(classifiers) != 2:
        raise ValueError(f"classifiers must have one entry per domain (2), got {len(classifiers)}")
    if len(undo) != 2:
        raise ValueError(f"undo must have one entry per domain (2), got {len(undo)}")
    for i, u in enumerate(undo):
        if u is not None and not callable(u):
            raise TypeError(f"undo[{i}] must be callable or None, got {type(u).__name__}")
    labels = []
    for x, clf, u in zip((a, b), classifiers, undo):
        if clf is None:
            from pygan.backbones.digits import load_digits_classifier

            clf = load_digits_classifier().to(device)
        elif not callable(clf):
            raise TypeError(
                f"classifiers entries must be callables/nn.Modules or None, got {type(clf).__name__}"
            )
        if isinstance(clf, torch.nn.Module):
            clf.eval()
        labels.append(_classify(x, clf, u, batch_size, device))
    la, lb = labels
    conf = torch.zeros(num_classes, num_classes, dtype=torch.long)
    conf.index_put_(
        (la.clamp(0, num_classes - 1), lb.clamp(0, num_classes - 1)), torch.ones_like(la), accumulate=True
    )
    return AgreementResult(
        agreement=float((la == lb).double().mean()),
        num_pairs=int(a.shape[0]),
        labels=(la, lb),
        confusion=conf,
    )


def per_domain_fid(
    fakes: Any,
    reals: Sequence[Any],
    *,
    extractors: Sequence[Any] | None = None,
    undo: Sequence[Callable | None] | None = None,
    n: int | None = None,
    generator: torch.Generator | None = None,
    **fid_kwargs: Any,
) -> list[float]:
    """FID of each domain's generated images against that domain's real images.

    ``fakes`` is a tuple of per-domain tensors (or a coupled model: ``sample(n)`` returning a tuple,
    with ``n`` given). ``extractors`` per domain (default ``"digits"``); ``undo`` per domain is applied
    to *both* real and fake images first (so that e.g. negatives are measured in the plain-digits
    feature space). A domain without a usable digits mapping (edges) should get an extractor trained
    on that domain, e.g. ``train_domain_classifier(edge_fn, "edge").features``."""
    from pygan.metrics.frechet import fid

    if not isinstance(fakes, (tuple, list)):
        fakes = resolve_samples(fakes, "fakes", n=n, generator=generator)
    if not isinstance(fakes, (tuple, list)):
        raise ValueError("fakes must be one image batch per domain (a tuple), or a coupled model")
    k = len(fakes)
    if len(reals) != k:
        raise ValueError(f"reals must have one entry per domain ({k}), got {len(reals)}")
    extractors = list(extractors) if extractors is not None else ["digits"] * k
    undo = list(undo) if undo is not None else [None] * k
    if len(extractors) != k or len(undo) != k:
        raise ValueError("extractors and undo must have one entry per domain")
    out = []
    for f, r, ext, u in zip(fakes, reals, extractors, undo):
        f = check_images(f, "fake domain images")
        r = check_images(r, "real domain images")
        if u is not None:
            with torch.no_grad():
                f, r = u(f), u(r)
        out.append(fid(r, f, extractor=ext, **fid_kwargs))
    return out
