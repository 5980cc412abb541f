"""Semantic agreement and per-domain FID."""

import pytest
import torch

from pygan.data import load_digits
from pygan.metrics import per_domain_fid, semantic_agreement


class _PixelLabel(torch.nn.Module):
    """A 'classifier' that reads the class from pixel (0, 0): label = round(x[0,0,0] * 10) mod 10."""

    def forward(self, x):
        lab = torch.round(x[:, 0, 0, 0] * 10).long() % 10
        return torch.nn.functional.one_hot(lab, 10).float()


def _coded(labels):
    x = torch.zeros(len(labels), 1, 8, 8)
    x[:, 0, 0, 0] = torch.tensor(labels, dtype=torch.float32) / 10
    return x


def test_hand_counted_agreement_confusion_undo_and_per_domain_classifier():
    a = _coded([1, 2, 3, 4])
    b = _coded([1, 2, 5, 4])
    r = semantic_agreement(a, b, classifiers=[_PixelLabel(), _PixelLabel()])
    assert r.agreement == pytest.approx(0.75) and r.num_pairs == 4
    assert r.confusion[3, 5] == 1 and r.confusion.sum() == 4 and r.confusion.trace() == 3
    # Domain 2 stores the negated code; undo maps it back.
    r2 = semantic_agreement((a, -a), classifiers=[_PixelLabel(), _PixelLabel()], undo=[None, lambda t: -t])
    assert r2.agreement == 1.0
    # Without undo, -0.1 reads as class 9 (round(-1) mod 10), so only pairs... none agree.
    r3 = semantic_agreement(a, -a, classifiers=[_PixelLabel(), _PixelLabel()])
    assert r3.agreement == 0.0
    # Labels (not logits) from a classifier are accepted too.
    r4 = semantic_agreement(a, b, classifiers=[lambda t: _PixelLabel()(t).argmax(1), _PixelLabel()])
    assert r4.agreement == pytest.approx(0.75)


def test_digits_classifier_agreement_on_real_pairs():
    x, _ = load_digits(32, "test")
    # Real pairs (digit, its negative) agree; undo the negative domain.
    r = semantic_agreement(x, -x, undo=[None, lambda t: -t])
    assert r.agreement == 1.0
    # Unrelated pairs (a shuffled partner) agree about 10 % of the time.
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))
    assert semantic_agreement(x, x[perm]).agreement < 0.25


def test_agreement_bad_inputs():
    a = _coded([1, 2])
    with pytest.raises(ValueError, match="same number"):
        semantic_agreement(a, _coded([1]))
    with pytest.raises(ValueError, match="pair"):
        semantic_agreement(a)
    with pytest.raises(ValueError, match="classifiers"):
        semantic_agreement(a, a, classifiers=[None])
    with pytest.raises(TypeError, match="undo"):
        semantic_agreement(a, a, undo=[None, 3])


def test_per_domain_fid():
    x, _ = load_digits(32, "all")
    a, b = x[:600], x[600:1200]
    vals = per_domain_fid((a, -b), [a, -b], undo=[None, lambda t: -t])
    assert vals == [pytest.approx(0.0, abs=1e-3)] * 2  # singular covariances (dead ReLUs): ~1e-5
    # A wrong domain (negatives judged as plain digits) is far.
    far = per_domain_fid((a, b), [a, -b], undo=[None, lambda t: -t])
    assert far[0] == pytest.approx(0.0, abs=1e-3) and far[1] > 10 * per_domain_fid((b,), [x[1200:]])[0]
    with pytest.raises(ValueError, match="one entry per domain"):
        per_domain_fid((a, b), [a])

    class Coupled:
        def sample(self, n, generator=None):
            return a[:n], b[:n]

    assert len(per_domain_fid(Coupled(), [a, b], n=300)) == 2
