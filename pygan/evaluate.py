"""``pygan eval RUN``: compute the metrics that fit a run's model and data, write ``metrics.json``.

Evaluating a run needs the run's model, so this module sits above :mod:`pygan.models` and
:mod:`pygan.runs` (the metric functions themselves are in :mod:`pygan.metrics`). The contract with
the run-directory code is kept minimal:

``pygan.runs.load_run(run_dir) -> (model, config, data)`` (tests and other callers may pass
``loader=`` instead), where

* ``model`` has ``sample(n, generator=None)`` returning samples in [-1, 1]: an image batch
  ``[n, C, H, W]``, 2-D points ``[n, 2]``, or — for a coupled generator — a tuple with one image batch
  per domain, all from the same ``z``. Optional: ``reconstruct(x)`` (autoencoders: x -> x̂) and
  ``translate(x)`` (image-to-image: input -> output). ``model.eval()`` is called if it exists.
* ``config`` is a mapping (recorded, otherwise unused).
* ``data`` describes the data: a mapping or an object with these optional keys/attributes —

  ``name``       ``"digits"``, ``"ring8"``, ``"grid25"``, ... (``"digits"`` enables the digits defaults);
  ``kind``       ``"images"``, ``"points"``, ``"coupled"`` (inferred from one sample when absent);
  ``real``       real evaluation samples (tensor, or a callable returning one); for ``"digits"`` the
                 default is ``pygan.data.load_digits(size, "test")`` at the samples' size;
  ``centres``    ``[K, 2]`` mixture centres and ``std`` (points);
  ``pairs``      ``(inputs, targets)`` test pairs for ``translate``;
  ``domains``    coupled runs: one entry per domain, each with optional ``name``, ``real``, ``undo``
                 (callable mapping the domain back to plain digits), ``transform`` (callable digits ->
                 domain; used to train and cache a domain classifier when there is no ``undo``;
                 ``cache_name`` names that cache entry, default ``name``) and
                 ``classifier`` (logits module for that domain); ``extractor`` (FID features).

Metric selection (:func:`select_metrics`):

* points: ``mode_coverage`` (needs ``centres`` and ``std``);
* images: ``fid``, ``kid``, ``precision_recall`` (k = 3) and ``density_coverage`` (k = 5) on the
  same features of ``real`` and the samples — extractor: ``extractor=`` option, else Inception when
  ``inception_weights=`` is given, else the digits classifier for digit data, else Inception when its
  weights are found (``$PYGAN_INCEPTION_WEIGHTS`` or pytorch-fid's file in the torch hub cache), else
  skipped; ``inception_score`` on the classifier behind the extractor (Inception's unbiased 1008-way
  logits, the digits classifier's 10-way ones; another extractor needs ``is_classifier=``);
  ``reconstruction`` (MSE, PSNR, SSIM, LPIPS-style on ``real``) when the model has ``reconstruct``;
  ``translation`` (the same on ``pairs``) when the model has ``translate``;
* coupled: ``semantic_agreement`` and ``fid_per_domain``.

``metrics=`` picks among these (``is``, ``pr`` and ``dc`` are short for ``inception_score``,
``precision_recall`` and ``density_coverage``); a name that does not exist is a ``ValueError``, one
that does not apply to the run's kind is listed under ``"skipped"``. Images are rounded to 8 bits
before the extractor when ``quantize="uint8"`` (the default for Inception, as pytorch-fid,
torch-fidelity and clean-fid see PNG files; see :mod:`pygan.metrics.frechet`), fed as floats with
``"float"`` (the default for other extractors); the result records which.

Every metric that is not computed is listed under ``"skipped"`` with the reason. NRDS compares several
runs, so it is :func:`compare_runs_nrds`, not part of a single run's evaluation.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from pygan.metrics._util import _sample_model

__all__ = ["METRIC_NAMES", "compare_runs_nrds", "evaluate_run", "metric_names", "run_data", "select_metrics"]


def _get(spec: Any, key: str, default: Any = None) -> Any:
    if spec is None:
        return default
    if isinstance(spec, Mapping):
        return spec.get(key, default)
    return getattr(spec, key, default)


def _default_loader(run_dir: str, ema: bool = True):
    from pygan.runs import load_run  # lazily: importing pygan.evaluate loads no model code

    model, config, data = load_run(run_dir, ema=ema)
    return model, config, run_data(data)


METRIC_NAMES = (
    "mode_coverage",
    "fid",
    "kid",
    "inception_score",
    "precision_recall",
    "density_coverage",
    "reconstruction",
    "translation",
    "semantic_agreement",
    "fid_per_domain",
)
METRIC_ALIASES = {"is": "inception_score", "pr": "precision_recall", "dc": "density_coverage"}


def metric_names(wanted: Any) -> list[str] | None:
    """``metrics=`` as a list of full metric names (aliases resolved; a comma-separated string is
    accepted); ``ValueError`` naming any unknown one. None: all that apply."""
    if wanted is None:
        return None
    if isinstance(wanted, str):
        wanted = [w for w in wanted.split(",") if w.strip()]
    out = []
    for w in wanted:
        name = METRIC_ALIASES.get(str(w).strip(), str(w).strip())
        if name not in METRIC_NAMES:
            from pygan.errors import ConfigError

            raise ConfigError(
                f"metrics: unknown metric {w!r}; choose from {list(METRIC_NAMES)} "
                f"(short: {', '.join(f'{a}={b}' for a, b in METRIC_ALIASES.items())})"
            )
        out.append(name)
    return out


def run_data(data: Any) -> Any:
    """Adapts a training run's data description (:class:`pygan.data.DataSpec`: ``spec``,
    ``spec_b``, ``info``, ``load(split)``) to the mapping this module reads; anything else is returned
    unchanged. Real samples come from the **test** split, loaded on first use:

    * ``images``: ``real`` = the test images;
    * ``points``: the mixture's ``centres`` and ``std`` (from the data's meta);
    * ``paired``: ``pairs`` = (test inputs, test targets), ``real`` = the test targets;
    * ``two-domain``: ``kind="coupled"``, one entry per domain with its test images; a domain made by
      one of the Soft-Coupled GANs paper's transforms carries ``undo`` (negative: ``-x``) or
      ``transform`` (edge: a classifier is trained on edge digits, since edges cannot be undone —
      edges made at the run's side, e.g. 16 px, then resized to the classifier's 32 px).
    """
    info = getattr(data, "info", None)
    if isinstance(data, Mapping) or info is None or not hasattr(data, "load"):
        return data
    from pygan.data import transforms as T

    cache: dict[str, Any] = {}

    def test():
        if "test" not in cache:
            ds = data.load("test")
            cache["test"] = ds.rows(torch.arange(len(ds)))
        return cache["test"]

    out: dict[str, Any] = {"name": data.spec}
    if info.kind == "points":
        centres = info.meta.get("centers")
        out.update(
            kind="points",
            centres=None if centres is None else torch.as_tensor(centres, dtype=torch.float64),
            std=info.meta.get("std"),
        )
    elif info.kind == "images":
        out.update(kind="images", real=lambda: test()["x"])
    elif info.kind == "paired":
        rows = test()
        out.update(kind="images", real=rows["target"], pairs=(rows["x"], rows["target"]))
    elif info.kind == "two-domain":
        names = list(info.meta.get("domains", ["A", "B"]))
        transform = info.meta.get("transform")
        domains = []
        for i, name in enumerate(names):
            dom: dict[str, Any] = {"name": str(name), "real": lambda i=i: test()["x"][test()["domain"] == i]}
            if i == 1 and transform == "negative":
                dom["undo"] = T.negative
            elif i == 1 and transform == "edge":
                dom["transform"] = T.edge
                if info.size != 32:  # the digits classifier's side: make the edges at the run's side
                    dom["transform"] = _at_side(T.edge, info.size)
                    dom["cache_name"] = f"edge-{info.size}px"
            domains.append(dom)
        out.update(kind="coupled", domains=domains)
    return out


def _at_side(transform: Callable, side: int) -> Callable:
    """``transform`` applied at ``side`` px and resized back: a domain classifier (trained on 32 px
    digits) then sees what a run at ``side`` px makes (e.g. 16 px edges, upsampled) rather than
    32 px edges, whose strokes differ."""
    from pygan.data import transforms as T

    def fn(x: torch.Tensor) -> torch.Tensor:
        return T.resize(transform(T.resize(x, side)), x.shape[-1])

    return fn


def _kind(model: Any, data: Any) -> str:
    kind = _get(data, "kind")
    if kind is not None:
        if kind not in ("images", "points", "coupled"):
            raise ValueError(f"data kind must be 'images', 'points' or 'coupled', got {kind!r}")
        return kind
    probe = _sample_model(model, 2, torch.Generator().manual_seed(0), 2)
    if isinstance(probe, tuple):
        return "coupled"
    if probe.dim() == 2:
        return "points"
    if probe.dim() == 4:
        return "images"
    raise ValueError(f"cannot tell the data kind from a sample of shape {tuple(probe.shape)}; set data kind")


def _is_digits(data: Any) -> bool:
    name = _get(data, "name")
    return isinstance(name, str) and "digits" in name.lower()


def _real(data: Any, like: torch.Tensor | None) -> torch.Tensor | None:
    real = _get(data, "real")
    if callable(real) and not isinstance(real, torch.Tensor):
        real = real()
    if real is None and _is_digits(data):
        from pygan.data import load_digits

        size = int(like.shape[-1]) if like is not None else 32
        real, _ = load_digits(size, "test")
        if like is not None and like.shape[1] == 3:
            real = real.expand(-1, 3, -1, -1).contiguous()
    return real


def _extractor(options: Mapping, data: Any) -> Any:
    if options.get("extractor") is not None:
        return options["extractor"]
    if options.get("inception_weights") is not None:
        return "inception"
    if _get(data, "extractor") is not None:
        return _get(data, "extractor")
    if _is_digits(data):
        return "digits"
    from pygan.backbones.inception import find_inception_weights

    if find_inception_weights() is not None:  # $PYGAN_INCEPTION_WEIGHTS or the torch hub cache
        return "inception"
    return None


def _is_classifier(options: Mapping, ext: Any) -> Any:
    """The classifier whose logits the Inception Score uses: ``is_classifier=``, else the one behind
    the FID extractor (``"inception"``, ``"digits"``), else None."""
    if options.get("is_classifier") is not None:
        return options["is_classifier"]
    return ext if ext in ("inception", "digits") else None


def select_metrics(model: Any, config: Any, data: Any, **options: Any) -> dict[str, Any]:
    """Which metrics fit this run: ``{"kind": ..., "run": [names], "skipped": {name: reason}}``."""
    kind = _kind(model, data)
    run: list[str] = []
    skipped: dict[str, str] = {}
    wanted = metric_names(options.get("metrics"))

    def want(name: str, ok: bool, reason: str) -> None:
        if wanted is not None and name not in wanted:
            return
        if ok:
            run.append(name)
        else:
            skipped[name] = reason

    if kind == "points":
        has = _get(data, "centres", _get(data, "centers")) is not None and _get(data, "std") is not None
        want("mode_coverage", has, "the data spec gives no mode centres and std")
    elif kind == "images":
        has_real = _get(data, "real") is not None or _is_digits(data)
        ext = _extractor(options, data)
        reason = (
            "no real samples in the data spec"
            if not has_real
            else "no feature extractor for this data: pass extractor= (nn.Module) or "
            "inception_weights= (local pt_inception-2015-12-05-6726825d.pth)"
        )
        want("fid", has_real and ext is not None, reason)
        want("kid", has_real and ext is not None, reason)
        has_clf = _is_classifier(options, ext) is not None
        want(
            "inception_score",
            has_clf,
            "no classifier for the Inception Score: use extractor 'digits' or 'inception', or pass "
            "is_classifier= (a module mapping images to logits)",
        )
        want("precision_recall", has_real and ext is not None, reason)
        want("density_coverage", has_real and ext is not None, reason)
        want(
            "reconstruction",
            hasattr(model, "reconstruct") and has_real,
            "the model has no reconstruct(x)" if not hasattr(model, "reconstruct") else "no real samples",
        )
        want(
            "translation",
            hasattr(model, "translate") and _get(data, "pairs") is not None,
            "the model has no translate(x)"
            if not hasattr(model, "translate")
            else "the data spec gives no pairs",
        )
    else:
        domains = _get(data, "domains")
        if domains is None:
            domains = [{}, {}] if _is_digits(data) else None
        ok = domains is not None and len(domains) == 2
        want("semantic_agreement", ok, "the data spec gives no 2 domains")
        has_reals = ok and all(_get(d, "real") is not None for d in domains)
        want("fid_per_domain", has_reals, "the data spec gives no real samples per domain")
    for name in wanted or ():
        if name not in run and name not in skipped:
            skipped[name] = f"not defined for {kind} data"
    return {"kind": kind, "run": run, "skipped": skipped}


def _int_option(lo: int, none: bool = False) -> Callable[[Any], str | None]:
    def check(v: Any) -> str | None:
        if v is None and none:
            return None
        if isinstance(v, bool) or not isinstance(v, int) or v < lo:
            return f"an int >= {lo}{' or None' if none else ''}"
        return None

    return check


def _is(kinds: tuple, text: str) -> Callable[[Any], str | None]:
    return lambda v: None if isinstance(v, kinds) else text


def _one_of(*choices: Any) -> Callable[[Any], str | None]:
    return lambda v: None if v in choices else f"one of {list(choices)}"


#: The options :func:`evaluate_run` takes, each with a check that returns what is allowed when the
#: value is not (None when it is).
EVAL_OPTIONS: dict[str, Callable[[Any], str | None]] = {
    "n_samples": _int_option(1),
    "seed": _int_option(0),
    "batch_size": _int_option(1),
    "device": lambda v: (
        None
        if isinstance(v, (str, torch.device)) and str(v).split(":")[0] in ("cpu", "cuda")
        else "cpu, cuda or cuda:N"
    ),
    "metrics": _is((str, list, tuple), "a comma-separated string or a list of metric names"),
    "extractor": lambda v: None if v is None or not isinstance(v, (int, float, bool)) else "a name or module",
    "inception_weights": _is((str, Path, type(None)), "a path"),
    "quantize": _one_of("uint8", "float", None),
    "ema": _is((bool,), "true or false"),
    "is_classifier": lambda v: None,
    "is_splits": _int_option(1),
    "pr_k": _int_option(1),
    "dc_k": _int_option(1),
    "lpips": lambda v: None,
    "data_range": lambda v: (
        None
        if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v > 0
        else "a number > 0"
    ),
    "kid_subsets": _int_option(1),
    "kid_subset_size": _int_option(2),
    "min_count": _int_option(1, none=True),
}


def check_options(options: Mapping[str, Any]) -> None:
    """:class:`~pygan.errors.ConfigError` for an option :func:`evaluate_run` does not take, or a value
    out of its range, naming it (and the options it takes)."""
    from pygan.errors import ConfigError

    for key, value in options.items():
        check = EVAL_OPTIONS.get(key)
        if check is None:
            raise ConfigError(f"unknown eval option {key!r}; options: {', '.join(EVAL_OPTIONS)}")
        allowed = check(value)
        if allowed is not None:
            raise ConfigError(f"eval option {key}={value!r}: must be {allowed}")
    metric_names(options.get("metrics"))


def _finite(v: Any) -> Any:
    if isinstance(v, torch.Tensor):
        v = v.tolist()
    if isinstance(v, float) and not math.isfinite(v):
        return None if math.isnan(v) else ("inf" if v > 0 else "-inf")
    if isinstance(v, dict):
        return {k: _finite(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_finite(x) for x in v]
    return v


def _jsonable(config: Any) -> Any:
    """The JSON-serialisable part of ``config`` (a mapping; other values are recorded by ``repr``)."""
    if dataclasses.is_dataclass(config) and not isinstance(config, type):
        config = dataclasses.asdict(config)
    if not isinstance(config, Mapping):
        return None if config is None else repr(config)
    out = {}
    for k, v in config.items():
        try:
            json.dumps(v)
            out[str(k)] = v
        except (TypeError, ValueError):
            out[str(k)] = repr(v)
    return out


def _quality(x: torch.Tensor, y: torch.Tensor, options: Mapping) -> dict:
    from pygan.metrics.image_quality import PerceptualDistance, mse, perceptual_distance, psnr, ssim

    dr = float(options.get("data_range", 2.0))
    out = {"mse": float(mse(x, y)), "psnr": float(psnr(x, y, data_range=dr)), "data_range": dr}
    if min(x.shape[-2:]) >= 11:
        out["ssim"] = float(ssim(x, y, data_range=dr))
    lp = options.get("lpips")
    metric = lp if isinstance(lp, PerceptualDistance) else PerceptualDistance()
    out["lpips_style" if metric.kind in ("digits", "custom") else f"lpips_{metric.kind}"] = float(
        perceptual_distance(x, y, metric=metric)
    )
    return out


class _FeatureCache:
    """The extractor's features of the real images and of the samples, computed once for FID, KID,
    precision/recall, density/coverage and the Inception Score."""

    def __init__(self, data: Any, samples: Any, options: Mapping, batch_size: int, device: Any):
        self.data, self.samples, self.options = data, samples, options
        self.bs, self.device = batch_size, device
        self._done: dict[str, Any] | None = None

    def get(self) -> dict[str, Any]:
        if self._done is None:
            from pygan.metrics.frechet import default_quantize, extract_features, resolve_extractor

            ext = _extractor(self.options, self.data)
            weights = self.options.get("inception_weights") if ext == "inception" else None
            q = default_quantize(ext, self.options.get("quantize"))
            fn = resolve_extractor(ext, weights_path=weights, device=self.device)
            real = _real(self.data, self.samples)
            kw = dict(batch_size=self.bs, device=self.device, quantize_mode=q)
            self._done = {
                "extractor": ext,
                "fn": fn,
                "quantize": q,
                "real": extract_features(real, fn, **kw),
                "fake": extract_features(self.samples, fn, **kw),
            }
        return self._done


def _is_logits(feats: dict, options: Mapping, samples: Any, bs: int, device: Any) -> tuple[torch.Tensor, str]:
    """The samples' logits for the Inception Score, from the cached features when the classifier is
    the one behind the extractor (Inception: unbiased head on pool3; digits: ``fc2`` on its
    features), else by running ``is_classifier`` on the samples."""
    ext = feats["extractor"]
    clf = _is_classifier(options, ext)
    if clf == ext and ext in ("inception", "digits"):
        fn = feats["fn"]
        with torch.no_grad():
            if ext == "inception":
                logits = fn.head_unbiased(feats["fake"].to(fn.fc.weight.device)).cpu()
            else:
                head = fn.__self__.fc2  # extractor = DigitsClassifier.features
                logits = head(feats["fake"].to(head.weight.device)).cpu()
        return logits, str(ext)
    from pygan.metrics.fidelity import classifier_logits

    q = feats["quantize"] if clf == ext else options.get("quantize")
    name = clf if isinstance(clf, str) else type(clf).__name__
    return classifier_logits(samples, clf, batch_size=bs, device=device, quantize_mode=q), name


def _feature_metric(name: str, cache: _FeatureCache, options: Mapping, seed: int) -> dict:
    from pygan.metrics.fidelity import density_coverage, inception_score, precision_recall
    from pygan.metrics.frechet import frechet_distance, gaussian_stats, kid

    if name == "inception_score":
        f = cache.get() if _extractor(options, cache.data) is not None else {"extractor": None}
        logits, clf = _is_logits(f, options, cache.samples, cache.bs, cache.device)
        splits = int(options.get("is_splits", 10))
        m, s = inception_score(logits, splits=splits)
        return {"mean": m, "std": s, "splits": splits, "classifier": clf, "num_samples": len(logits)}
    f = cache.get()
    fr, ff = f["real"], f["fake"]
    common = {"extractor": str(f["extractor"]), "quantize": f["quantize"]}
    if name == "fid":
        value = frechet_distance(*gaussian_stats(fr), *gaussian_stats(ff))
        return {"value": value, **common, "num_real": len(fr)}
    if name == "kid":
        m, s = kid(
            fr,
            ff,
            subsets=int(options.get("kid_subsets", 100)),
            subset_size=int(options.get("kid_subset_size", 1000)),
            seed=seed,
            features=True,
        )
        return {"mean": m, "std": s, **common}
    if name == "precision_recall":
        return {**precision_recall(fr, ff, k=int(options.get("pr_k", 3))), **common}
    return {**density_coverage(fr, ff, k=int(options.get("dc_k", 5))), **common}


def _apply(fn: Callable, x: torch.Tensor, batch_size: int) -> torch.Tensor:
    with torch.no_grad():
        return torch.cat([fn(x[i : i + batch_size]).detach().cpu() for i in range(0, x.shape[0], batch_size)])


def _domain_classifier(dom: Any, idx: int) -> tuple[Any, Callable | None]:
    clf, undo = _get(dom, "classifier"), _get(dom, "undo")
    if clf is None and undo is None and _get(dom, "transform") is not None:
        from pygan.backbones.digits import train_domain_classifier

        name = _get(dom, "cache_name") or _get(dom, "name") or f"domain{idx}"
        clf = train_domain_classifier(_get(dom, "transform"), name)
    return clf, undo


def evaluate_run(
    run_dir: str | Path, *, loader: Callable | None = None, write: bool = True, **options: Any
) -> dict:
    """Evaluates the run in ``run_dir`` and (``write=True``) writes ``run_dir/metrics.json``.

    Options: ``n_samples`` (default 1000), ``seed`` (0), ``batch_size`` (256), ``device`` ("cpu"),
    ``metrics`` (restrict to these names; see :func:`metric_names`), ``extractor`` (FID/KID/PR/DC
    features: "digits", "inception", a module), ``inception_weights`` (local path), ``quantize``
    ("uint8" or "float"; default uint8 for Inception, float otherwise), ``ema`` (True: the generator
    EMA's weights when the run kept one; False: the trained ones), ``is_classifier`` (a module for
    the Inception Score when the extractor has no classifier), ``is_splits`` (10), ``pr_k`` (3),
    ``dc_k`` (5), ``lpips`` (a :class:`PerceptualDistance`), ``data_range`` (2.0), ``kid_subsets``
    (100), ``kid_subset_size`` (1000), ``min_count`` (mode coverage). An option not in this list,
    or a value out of its range, is a :class:`~pygan.errors.ConfigError` (:data:`EVAL_OPTIONS`).

    A metric that applies but cannot be computed here (no Inception weights, too few samples for
    its k, ...) is left out of ``"metrics"`` and listed under ``"skipped"`` with the reason, like one
    that does not apply; the result is then whatever could be computed (possibly nothing: callers
    decide — ``pygan eval`` exits 1 when ``"metrics"`` is empty). Returns the dict that is written."""
    check_options(options)
    run_dir = Path(run_dir)
    if loader is None:
        model, config, data = _default_loader(str(run_dir), ema=bool(options.get("ema", True)))
    else:
        model, config, data = loader(str(run_dir))
    if hasattr(model, "eval"):
        model.eval()
    n = int(options.get("n_samples", 1000))
    seed = int(options.get("seed", 0))
    bs = int(options.get("batch_size", 256))
    device = options.get("device", "cpu")
    plan = select_metrics(model, config, data, **options)
    results: dict[str, Any] = {}
    skipped = dict(plan["skipped"])
    # Reconstruction and translation read inputs, not samples: an image-to-image model (whose
    # sample() needs held-out inputs) is not asked for any unless another metric needs them.
    needs_samples = set(plan["run"]) - {"reconstruction", "translation"}
    samples = _sample_model(model, n, torch.Generator().manual_seed(seed), bs) if needs_samples else None
    features = _FeatureCache(data, samples, options, bs, device)

    for name in plan["run"]:
        try:
            value = _compute(name, model, data, samples, features, options, seed, bs, device)
        except (FileNotFoundError, ImportError, ValueError) as exc:  # e.g. no weights, too few samples
            skipped[name] = f"could not be computed: {' '.join(str(exc).split())}"
        else:
            results[name] = value

    out = {
        "run_dir": str(run_dir),
        "kind": plan["kind"],
        "metrics": _finite(results),
        "skipped": skipped,
        "weights": getattr(model, "weights", "raw"),
        "options": _finite(
            {k: v for k, v in options.items() if isinstance(v, (int, float, str, bool, type(None)))}
        ),
        "num_samples": n,
        "seed": seed,
        "config": _jsonable(config),
    }
    if write:
        from pygan.runs import run_paths, write_json

        write_json(run_paths(str(run_dir))["eval"], out)
    return out


def _compute(
    name: str, model, data, samples, features: _FeatureCache, options: Mapping, seed: int, bs: int, device
):
    """The value of metric ``name`` (one entry of ``evaluate_run``'s ``"metrics"``)."""
    from pygan.metrics.agreement import per_domain_fid, semantic_agreement
    from pygan.metrics.modes import mode_coverage

    if name == "mode_coverage":
        mc = mode_coverage(
            samples,
            _get(data, "centres", _get(data, "centers")),
            _get(data, "std"),
            min_count=options.get("min_count"),
        )
        return mc.to_dict()
    if name in ("fid", "kid", "precision_recall", "density_coverage", "inception_score"):
        return _feature_metric(name, features, options, seed)
    if name == "reconstruction":
        like = samples
        if like is None and _get(data, "real") is None:  # digits by name: size from a probe
            like = _sample_model(model, 2, torch.Generator().manual_seed(seed), 2)
        real = _real(data, like)
        return _quality(_apply(model.reconstruct, real, bs), real, options)
    if name == "translation":
        inputs, targets = _get(data, "pairs")
        return _quality(_apply(model.translate, inputs, bs), targets, options)
    if name == "semantic_agreement":
        domains = _get(data, "domains") or [{}, {}]
        clfs, undos = zip(*(_domain_classifier(d, i) for i, d in enumerate(domains)))
        res = semantic_agreement(
            samples[0], samples[1], classifiers=list(clfs), undo=list(undos), device=device
        )
        return res.to_dict()
    if name == "fid_per_domain":
        domains = _get(data, "domains")
        reals = [_get(d, "real")() if callable(_get(d, "real")) else _get(d, "real") for d in domains]
        extractors = []
        for i, d in enumerate(domains):
            ext = _get(d, "extractor")
            if ext is None:
                clf, _ = _domain_classifier(d, i)
                ext = clf.features if (clf is not None and hasattr(clf, "features")) else "digits"
            extractors.append(ext)
        undos = [_get(d, "undo") for d in domains]
        vals = per_domain_fid(
            list(samples), reals, extractors=extractors, undo=undos, batch_size=bs, device=device
        )
        return {(_get(d, "name") or f"domain{i}"): v for i, (d, v) in enumerate(zip(domains, vals))}
    raise RuntimeError(f"no computation for metric {name!r}")  # select_metrics only plans known names


def compare_runs_nrds(
    run_dirs: Sequence[str | Path],
    *,
    loader: Callable | None = None,
    real: Any = None,
    names: Sequence[str] | None = None,
    plot: str | Path | None = None,
    **nrds_options: Any,
) -> Any:
    """NRDS over several runs (one joint D, as in the paper's tables). ``real`` defaults to the first
    run's data ``real`` (digits: the test split). Returns :class:`pygan.metrics.nrds.NRDSResult`."""
    from pygan.metrics.nrds import nrds

    if len(run_dirs) < 2:
        raise ValueError("NRDS compares at least 2 runs")
    loaded = [(loader or _default_loader)(str(d)) for d in run_dirs]
    names = list(names) if names is not None else [Path(d).name for d in run_dirs]
    if len(set(names)) != len(names):
        raise ValueError(f"run names must be unique, got {names}")
    models = {}
    for nm, (model, _, _) in zip(names, loaded):
        if hasattr(model, "eval"):
            model.eval()
        models[nm] = model
    if real is None:
        probe = _sample_model(loaded[0][0], 2, torch.Generator().manual_seed(0), 2)
        real = _real(loaded[0][2], probe if isinstance(probe, torch.Tensor) else None)
        if real is None:
            raise ValueError("no real samples: pass real=")
    return nrds(real, models, plot=plot, **nrds_options)
