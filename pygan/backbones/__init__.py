"""Feature backbones: the frozen networks that losses (:mod:`pygan.nn`) and metrics
(:mod:`pygan.metrics`) read features from, and the local-weights finders and loaders behind them.
Nothing here downloads: the digits classifier's weights ship with pygan
(``pygan/backbones/weights/digits_cnn.pt``); VGG, AlexNet and Inception weights are read from local
files the user gives (or, for Inception, pytorch-fid's copy in the torch hub cache).

* :mod:`pygan.backbones.digits`: the pygan digits classifier (FID/KID features for digit data, the
  labeller for semantic agreement, the LPIPS-style fallback trunk, a perceptual-loss network);
* :mod:`pygan.backbones.inception`: the FID Inception-v3 and :func:`find_inception_weights`;
* :mod:`pygan.backbones.vgg`: VGG19 with named taps and the torchvision-layout VGG ``features`` stack;
* :mod:`pygan.backbones.taps`: AlexNet / VGG-16 trunks with the LPIPS taps, and
  :func:`load_state_dict_file` for local weights files.
"""

from pygan.backbones.digits import (
    DEFAULT_WEIGHTS,
    DigitsClassifier,
    DigitsFeatures,
    cache_dir,
    load_digits_classifier,
    predict_classes,
    train_digits_classifier,
    train_domain_classifier,
)
from pygan.backbones.inception import (
    FID_WEIGHTS_FILE,
    FIDInceptionV3,
    find_inception_weights,
    hub_weights_path,
    load_fid_inception,
)
from pygan.backbones.taps import AlexNetFeatures, VGG16Features, load_state_dict_file
from pygan.backbones.vgg import VGG19, VGG19_LAYERS, load_vgg19, vgg_features

__all__ = [
    "DEFAULT_WEIGHTS",
    "FID_WEIGHTS_FILE",
    "VGG19",
    "VGG19_LAYERS",
    "AlexNetFeatures",
    "DigitsClassifier",
    "DigitsFeatures",
    "FIDInceptionV3",
    "VGG16Features",
    "cache_dir",
    "find_inception_weights",
    "hub_weights_path",
    "load_digits_classifier",
    "load_fid_inception",
    "load_state_dict_file",
    "load_vgg19",
    "predict_classes",
    "train_digits_classifier",
    "train_domain_classifier",
    "vgg_features",
]
