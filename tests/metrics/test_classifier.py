"""The shipped digits classifier: accuracy, input handling, deterministic training, domain caching."""

import pytest
import torch

from pygan.backbones.digits import (
    DEFAULT_WEIGHTS,
    DigitsClassifier,
    _shift,
    accuracy,
    load_digits_classifier,
    save_classifier,
    train_digits_classifier,
    train_domain_classifier,
)
from pygan.data import load_digits


def test_shipped_classifier_accuracy_on_test_split():
    assert DEFAULT_WEIGHTS.is_file()
    clf = load_digits_classifier()
    x, y = load_digits(32, "test")
    acc = accuracy(clf, x, y)
    assert acc >= 0.97, acc
    assert clf.meta["test_accuracy"] == pytest.approx(acc)  # the file records what it scores
    assert not any(p.requires_grad for p in clf.parameters())


def test_input_conventions_rgb_and_other_sizes():
    clf = load_digits_classifier()
    x, y = load_digits(28, "test")
    # Grey repeated to RGB gives the same logits (RGB is averaged back to grey).
    torch.testing.assert_close(clf(x.expand(-1, 3, -1, -1)), clf(x))
    assert accuracy(clf, x, y) >= 0.95  # 28 px resized to 32
    assert clf.features(x[:4]).shape == (4, DigitsClassifier.feature_dim)
    assert [m.shape[1:] for m in clf.feature_maps(x[:2])] == [(16, 32, 32), (32, 16, 16), (64, 8, 8)]
    with pytest.raises(ValueError, match="1 or 3"):
        clf(torch.zeros(2, 2, 32, 32))


def test_shift_augmentation_is_a_translation_with_background_fill():
    x = torch.arange(2 * 16, dtype=torch.float32).view(2, 1, 4, 4)
    out = _shift(x, torch.Generator().manual_seed(3), 1)
    for i in range(2):
        # Find the applied shift by matching against all 9 candidates.
        padded = torch.nn.functional.pad(x[i], (1, 1, 1, 1), value=-1.0)
        cands = [padded[:, dy : dy + 4, dx : dx + 4] for dy in range(3) for dx in range(3)]
        assert any(torch.equal(out[i], c) for c in cands)


def test_training_is_deterministic(tmp_path):
    a = train_digits_classifier(epochs=1, seed=1, max_images=320)
    b = train_digits_classifier(epochs=1, seed=1, max_images=320)
    for k, v in a.state_dict().items():
        assert torch.equal(v, b.state_dict()[k]), k
    c = train_digits_classifier(epochs=1, seed=2, max_images=320)
    assert not torch.equal(c.conv1.weight, a.conv1.weight)
    x, _ = load_digits(32, "test")
    path = tmp_path / "c.pt"
    save_classifier(a, path, meta={"note": "test"})
    c = load_digits_classifier(path)
    assert c.meta["note"] == "test" and c.meta["epochs"] == 1 and c.meta["max_images"] == 320
    torch.testing.assert_close(c(x[:8]), a(x[:8]))


def test_domain_classifier_is_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("PYGAN_CACHE", str(tmp_path))

    def negate(t):
        return -t

    clf = train_domain_classifier(negate, "neg", epochs=2)
    files = list((tmp_path / "classifiers").glob("digits-neg-*.pt"))
    assert len(files) == 1
    x, y = load_digits(32, "test")
    assert accuracy(clf, -x, y) > 0.8
    again = train_domain_classifier(negate, "neg", epochs=2)  # loads, does not retrain
    assert again is clf or all(torch.equal(v, clf.state_dict()[k]) for k, v in again.state_dict().items())
    with pytest.raises(ValueError, match="name"):
        train_domain_classifier(negate, "../evil", epochs=1)
    with pytest.raises(TypeError, match="transform"):
        train_domain_classifier("negate", "neg")


def test_missing_weights_file_message(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        load_digits_classifier(tmp_path / "nope.pt")
    bad = tmp_path / "bad.pt"
    torch.save({"state_dict": {}, "meta": {"arch": "other"}}, bad)
    with pytest.raises(ValueError, match="architecture"):
        load_digits_classifier(bad)
