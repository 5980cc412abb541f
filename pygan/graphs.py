"""Whole-iteration CUDA graphs, and the loss read-back that keeps the host off the hot path.

A model's ``training_step`` (every critic, generator, encoder/decoder, code and cross-domain update
of one iteration, penalty double backward included) is captured once as a CUDA graph and replayed
for every later batch: one ``cudaGraphLaunch`` instead of hundreds or thousands of kernel launches,
which is what a small model's step is bound by. :class:`GraphedStep` does it for the training loop
(``pygan train --cuda-graphs``, ``TrainOptions(cuda_graphs=True)``); :class:`EagerStep` is the plain
path with the same interface. Both report the step's losses to a :class:`LossMonitor`, which keeps
them on the device; the loop reads them back every ``log_every`` steps (one sync), not every step.

How a model is captured (the recipe PyTorch documents for whole-network capture)
================================================================================

1. The model's optimizers are made *capturable* (``capturable=True``: the step counters live on the
   device) — on CUDA the eager path does the same, so both do the same arithmetic;
   :func:`portable_optimizer_state` writes them to checkpoints as configured (counters on the CPU),
   so graphed and eager runs resume each other.
2. Each batch is copied into static input buffers (one device-to-device copy per field).
3. The first ``warmup`` iterations run eagerly on a side stream (optimizer state, cuBLAS/cuDNN
   handles, Triton compilation are created there). From the second one on they run under a host-read
   check (:class:`HostReadDetector`, plus CUDA's sync debug mode): a step that reads a device value on
   the host (``.item()``, ``float(t)``, ``if t > 0``, ``.tolist()``, ``nonzero``) cannot be replayed, and
   the loop says so in one line and trains that model eagerly.
4. The next iteration is captured (``torch.cuda.graph``, autocast with its cache off) and replayed;
   every later one is a copy into the static buffers and one replay. Noise and the penalty's alphas are
   drawn inside the graph from the default CUDA generator, which replays advance like eager calls do,
   so a graphed run draws the same random numbers as an eager one.

The generator EMA's update (:class:`pygan.models.EMA`: device ops, its warm-up ramp computed on the
device from an update counter) runs in the step body after ``training_step``, so it is captured with
the step and replayed with it. ``--amp fp16``'s gradient scaler is not capturable (``step`` reads
its overflow flag on the host): with a scaler the model runs eagerly, saying so in one line.

A model whose host code differs between iterations (lazy regularisation: the penalty every k-th
critic step) names the variants with :meth:`pygan.models.Model.graph_phase`; one graph is captured per
phase (all in one memory pool) and the loop replays the one the iteration needs.

Equality with the eager path is tested on a GPU (``tests/gpu/test_gpu_graphs.py``: same seed, K
iterations, bitwise equal losses and parameters); the plumbing (static buffers, phases, the fall-back, the
host-read check, portable optimizer state) is tested on CPU with a stand-in for the CUDA graph API
(``tests/test_graphs.py``).
"""

from __future__ import annotations

import contextlib
import math
import sys
import warnings
from collections.abc import Callable
from typing import Any

import torch
from torch.overrides import TorchFunctionMode

from pygan.amp import grad_scaling
from pygan.data.core import Batch

__all__ = [
    "EagerStep",
    "GraphedStep",
    "HostReadDetector",
    "LossMonitor",
    "NonFiniteLossError",
    "make_capturable",
    "portable_optimizer_state",
]


class NonFiniteLossError(RuntimeError):
    """A loss returned by ``training_step`` was NaN or infinite: ``loss`` (its name), ``value`` and
    ``step`` (the first step it was not finite at) say which, when known."""

    def __init__(self, message: str, loss: str | None = None, value: float | None = None, step=None):
        super().__init__(message)
        self.loss, self.value, self.step = loss, value, step


# ---- host reads ------------------------------------------------------------------------------------

# Tensor methods that copy a device value to the host (a sync on CUDA, forbidden inside a graph).
_HOST_READS = frozenset(
    {"item", "tolist", "__bool__", "__float__", "__int__", "__index__", "__complex__", "numpy", "nonzero"}
)
_PASS_THROUGH = ("torch.overrides", "torch._tensor", "pygan.graphs")


def _caller_module() -> str:
    """The module of the first frame outside torch's dispatch plumbing and this file."""
    f = sys._getframe(2)
    while f is not None:
        name = f.f_globals.get("__name__", "")
        if not name.startswith(_PASS_THROUGH):
            return name
        f = f.f_back
    return ""


class HostReadDetector(TorchFunctionMode):
    """Records host reads of tensor values (``.item()``, ``float(t)``, ``bool(t)``, ``.tolist()``,
    ``.numpy()``, ``nonzero``, formatting) made by code outside torch itself, while letting them run:
    the step completes normally and :attr:`reads` says what would break a CUDA graph. Works on any
    device (on CPU none of these synchronise, but they would on a GPU)."""

    def __init__(self):
        super().__init__()
        self.reads: list[str] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        name = getattr(func, "__name__", "")
        if name in _HOST_READS or name == "__format__":
            where = _caller_module()
            if where != "torch" and not where.startswith("torch."):  # torch's own reads are its business
                self.reads.append(f"{name.strip('_')}() in {where or '?'}")
        return func(*args, **(kwargs or {}))


# ---- optimizers ----------------------------------------------------------------------------------

_ORIGINAL = "_pygan_capturable"


def _capture_problem(name: str, opt: torch.optim.Optimizer) -> str | None:
    if "capturable" in opt.defaults or isinstance(opt, torch.optim.SGD):
        return None
    return f"optimizer {name!r} ({type(opt).__name__}) has no capturable mode"


def make_capturable(optimizers: dict[str, torch.optim.Optimizer], flag: bool) -> None:
    """Sets ``capturable`` on every parameter group (optimizers without the option, e.g. SGD, need
    none) and moves the step counters where that mode keeps them: on the parameters' device when
    capturable, on the CPU otherwise (as a fresh eager optimizer has them). The first call remembers
    each group's original setting for :func:`portable_optimizer_state`."""
    for opt in optimizers.values():
        if "capturable" not in opt.defaults:
            continue
        if not hasattr(opt, _ORIGINAL):
            setattr(opt, _ORIGINAL, [bool(g.get("capturable", False)) for g in opt.param_groups])
        for group in opt.param_groups:
            group["capturable"] = flag
            for p in group["params"]:
                st = opt.state.get(p)
                if st and torch.is_tensor(st.get("step")):
                    st["step"] = st["step"].to(p.device if flag else "cpu")


def portable_optimizer_state(opt: torch.optim.Optimizer) -> dict:
    """``opt.state_dict()`` as the optimizer that ``configure_optimizers`` built would write it: the
    ``capturable`` flags it was built with and the step counters on the CPU. A checkpoint of a graphed
    run is thereby the same as an eager run's, and either mode resumes it."""
    sd = opt.state_dict()
    original = getattr(opt, _ORIGINAL, None)
    if original is None:
        return sd
    sd = {"state": {k: dict(v) for k, v in sd["state"].items()}, "param_groups": sd["param_groups"]}
    for g, flag in zip(sd["param_groups"], original):
        g["capturable"] = flag
    if not any(original):
        for st in sd["state"].values():
            if torch.is_tensor(st.get("step")):
                st["step"] = st["step"].cpu()
    return sd


# ---- losses on the device --------------------------------------------------------------------------


class LossMonitor:
    """The losses of the last ``window`` steps, kept on the device.

    :meth:`observe` (inside the step, so inside the graph when there is one) writes the step's losses
    into a ring buffer with three small device ops and no host read; :meth:`advance` counts the step
    on the host. :meth:`read` copies the rows since the last read to the host (one sync) and raises
    :class:`NonFiniteLossError` naming the first non-finite loss and its step. The caller must read at
    least every ``window`` steps.
    """

    def __init__(self, window: int, start_step: int = 0):
        if isinstance(window, bool) or not isinstance(window, int) or window < 1:
            raise ValueError(f"window must be a positive int, got {window!r}")
        self.window = window
        self.start = start_step  # steps done before this monitor (a resumed run)
        self.count = 0  # steps counted by advance()
        self.read_count = 0
        self.keys: tuple[str, ...] | None = None
        self.tensor_keys: tuple[str, ...] = ()
        self.consts: dict[str, float] = {}
        self.hist: torch.Tensor | None = None
        self.pos: torch.Tensor | None = None

    def observe(self, logs: dict) -> None:
        if not isinstance(logs, dict):
            raise TypeError(f"training_step must return a dict of losses, got {type(logs).__name__}")
        keys = tuple(logs)
        if self.keys is None:
            self._setup(logs)
        elif keys != self.keys:
            raise ValueError(
                f"training_step returned the losses {list(keys)} at step {self.start + self.count + 1}, "
                f"but {list(self.keys)} before: a model must report the same losses every step"
            )
        vals = []
        for k in self.keys:
            v = logs[k]
            if torch.is_tensor(v) != (k in self.tensor_keys):
                raise TypeError(
                    f"loss {k!r} was a {'tensor' if k in self.tensor_keys else 'number'} before and is a "
                    f"{type(v).__name__} at step {self.start + self.count + 1}"
                )
            if torch.is_tensor(v):
                vals.append(v.detach().reshape(()).float())
            else:
                self.consts[k] = float(v)
        if vals:
            row = torch.stack(vals).unsqueeze(0)
            self.hist.index_copy_(0, self.pos, row)
            self.pos.add_(1).remainder_(self.window)

    def _setup(self, logs: dict) -> None:
        for k, v in logs.items():
            if not isinstance(k, str):
                raise TypeError(f"training_step's loss names must be strings, got {k!r}")
            if torch.is_tensor(v):
                if v.numel() != 1:
                    raise ValueError(f"loss {k!r} must be a scalar, got shape {tuple(v.shape)}")
            elif isinstance(v, bool) or not isinstance(v, (int, float)):
                raise TypeError(f"loss {k!r} must be a tensor or a number, got {type(v).__name__}")
        self.keys = tuple(logs)
        self.tensor_keys = tuple(k for k, v in logs.items() if torch.is_tensor(v))
        if self.tensor_keys:
            dev = next(v for v in logs.values() if torch.is_tensor(v)).device
            self.hist = torch.zeros(self.window, len(self.tensor_keys), device=dev)
            self.pos = torch.zeros(1, dtype=torch.long, device=dev)

    def advance(self) -> None:
        self.count += 1
        if self.count - self.read_count > self.window:
            raise RuntimeError(
                f"LossMonitor: {self.count - self.read_count} steps since the last read, more than its "
                f"window of {self.window} (read at least every window steps)"
            )

    def read(self) -> list[tuple[int, dict[str, float]]]:
        """``[(step, {loss: value}), ...]`` for every step since the last read (step numbers count
        from the start of the run); raises :class:`NonFiniteLossError` at the first non-finite one."""
        n = self.count - self.read_count
        if n <= 0:
            return []
        rows: list[list[float]] = []
        if self.hist is not None:
            table = self.hist.tolist()  # the one sync
            rows = [table[i % self.window] for i in range(self.read_count, self.count)]
        out = []
        for j in range(n):
            step = self.start + self.read_count + j + 1
            values = dict(zip(self.tensor_keys, rows[j])) if rows else {}
            values.update(self.consts)
            values = {k: values[k] for k in self.keys or ()}
            out.append((step, values))
        self.read_count = self.count
        for step, values in out:
            bad = [(k, v) for k, v in values.items() if not math.isfinite(v)]
            if bad:
                k, v = bad[0]
                raise NonFiniteLossError(f"loss {k!r} is {v} at step {step}", k, v, step)
        return out


# ---- running a step --------------------------------------------------------------------------------


def _autocast(device: torch.device, amp_dtype: torch.dtype | None, cache: bool = True):
    if amp_dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=amp_dtype, cache_enabled=cache)


def _after_step(model) -> None:
    """What follows every ``training_step`` inside the step body (so inside the graph when there is
    one): the generator EMA's update (device ops only; :class:`pygan.models.EMA`)."""
    ema = getattr(model, "ema", None)
    if ema is not None:
        ema.update()


class EagerStep:
    """The plain path: ``model.training_step(batch)`` under autocast (and the float16 gradient scaler
    ``scaler``, :mod:`pygan.amp`), the generator EMA's update, losses to the monitor.

    On CUDA the optimizers run in their ``capturable`` mode here too (step counters on the device,
    Adam's bias correction computed there in float32 rather than in Python doubles): the eager and the
    graphed path then do the same arithmetic, so ``--cuda-graphs`` changes no bit of a run (tested on
    a GPU) and a run can switch modes on resume."""

    mode = "eager"

    def __init__(self, model, monitor: LossMonitor, device: torch.device, amp_dtype=None, scaler=None):
        self.model, self.monitor, self.device, self.amp_dtype = model, monitor, device, amp_dtype
        self.scaler = scaler
        self.reason: str | None = None
        if device.type == "cuda":
            make_capturable(model.optimizers, True)

    def __call__(self, batch: Batch, iteration: int) -> None:
        self.model.iteration = iteration
        with _autocast(self.device, self.amp_dtype), grad_scaling(self.scaler):
            logs = self.model.training_step(batch)
        _after_step(self.model)
        self.monitor.observe(logs)
        self.monitor.advance()


class _CudaGraphAPI:
    """The CUDA graph calls :class:`GraphedStep` makes (tests substitute a CPU stand-in)."""

    def __init__(self, device: torch.device):
        self.device = device
        self.side = torch.cuda.Stream(device)
        self.pool = torch.cuda.graph_pool_handle()

    @contextlib.contextmanager
    def side_stream(self):
        self.side.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(self.side):
            yield
        torch.cuda.current_stream(self.device).wait_stream(self.side)

    @contextlib.contextmanager
    def sync_check(self, found: list[str]):
        """CUDA's sync debug mode in "warn" mode; the warnings it raises are collected in ``found``."""
        old = torch.cuda.get_sync_debug_mode()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            torch.cuda.set_sync_debug_mode("warn")
            try:
                yield
            finally:
                torch.cuda.set_sync_debug_mode(old)
        for w in caught:  # (setting the mode itself warns that it is a prototype: not a sync)
            if "called a synchronizing CUDA operation" in str(w.message):
                found.append(str(w.message).splitlines()[0])
            else:  # not ours: let it through as it would have been
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno, source=w.source)

    def capture(self, fn: Callable[[], None]):
        torch.cuda.synchronize(self.device)
        g = torch.cuda.CUDAGraph()
        # thread_local: CUDA calls of other threads (a DataLoader's pin-memory thread) stay legal
        with torch.cuda.graph(g, pool=self.pool, capture_error_mode="thread_local"):
            fn()
        return g

    def replay(self, g) -> None:
        g.replay()

    def rng_state(self):
        return torch.cuda.get_rng_state(self.device)

    def set_rng_state(self, s) -> None:
        torch.cuda.set_rng_state(s, self.device)

    def after_failure(self) -> None:
        with contextlib.suppress(Exception):
            torch.cuda.synchronize(self.device)


class GraphedStep(EagerStep):
    """Runs ``model.training_step`` as CUDA graphs (see the module docstring).

    Args:
        model: a :class:`pygan.models.Model` with its optimizers configured.
        monitor: the :class:`LossMonitor` the step's losses go to (inside the graph).
        device: the CUDA device.
        amp_dtype: autocast dtype (e.g. ``torch.bfloat16``) or None.
        scaler: the float16 ``GradScaler`` (``--amp fp16``) or None; with one the model runs
            eagerly (its ``step`` reads the overflow flag on the host).
        warmup: eager iterations of the first phase before its capture (later phases: one each).
        max_phases: more distinct :meth:`~pygan.models.Model.graph_phase` values than this make
            the model run eagerly (each phase is a graph to capture).
        say: where the one-line fall-back message goes (the loop's logger; ``print`` by default).
        capture: False runs the graph path's eager twin (capturable optimizers, static buffers, side
            stream) without capturing: what the tests compare the graphs with, bit for bit.
    """

    mode = "graph"

    def __init__(
        self,
        model,
        monitor: LossMonitor,
        device: torch.device,
        amp_dtype=None,
        *,
        warmup: int = 3,
        max_phases: int = 32,
        say: Callable[[str], Any] = print,
        capture: bool = True,
        api=None,
        scaler=None,
    ):
        super().__init__(model, monitor, device, amp_dtype, scaler)
        if isinstance(warmup, bool) or not isinstance(warmup, int) or warmup < 1:
            raise ValueError(f"warmup must be an int >= 1, got {warmup!r}")
        self.warmup, self.max_phases, self.say, self.capture = warmup, max_phases, say, capture
        self.api = api if api is not None else _CudaGraphAPI(device)
        self.static: Batch | None = None
        self.graphs: dict[Any, Any] = {}
        self.eager_runs: dict[Any, int] = {}  # warm-up iterations run, per phase
        self.replays = 0
        self.first_phase = None
        self.reason = model.cuda_graph_blocker()
        if self.reason is None and scaler is not None:
            self.reason = (
                "--amp fp16 needs a GradScaler, whose step() reads its overflow flag on the host "
                "(.item()), which a CUDA graph cannot replay (use --amp bf16 to keep the graphs)"
            )
        if self.reason is None:
            self.reason = next(
                (r for n, o in model.optimizers.items() if (r := _capture_problem(n, o)) is not None), None
            )
        if self.reason is not None:
            self._fall_back(self.reason)

    # -- the fall-back
    def _fall_back(self, reason: str) -> None:
        self.reason = reason
        self.graphs.clear()
        self.say(f"cuda-graphs: {self.model.name} runs eagerly: {reason}")

    # -- static inputs
    def _to_static(self, batch: Batch) -> Batch:
        fields = batch.fields()
        if self.static is None:
            self.static = Batch(**{k: torch.empty_like(v, device=self.device) for k, v in fields.items()})
        static = self.static.fields()
        if fields.keys() != static.keys():
            raise ValueError(
                f"cuda-graphs: the batch has fields {sorted(fields)}, the captured step was built for "
                f"{sorted(static)}"
            )
        for k, v in fields.items():
            s = static[k]
            if v.shape != s.shape or v.dtype != s.dtype:
                raise ValueError(
                    f"cuda-graphs: batch.{k} is {tuple(v.shape)} {v.dtype}, the captured step was built for "
                    f"{tuple(s.shape)} {s.dtype} (a graph replays fixed shapes)"
                )
            s.copy_(v, non_blocking=True)
        return self.static

    def _body(self, batch: Batch) -> Callable[[], None]:
        def run():
            with _autocast(self.device, self.amp_dtype, cache=False), grad_scaling(self.scaler):
                logs = self.model.training_step(batch)
            _after_step(self.model)  # the generator EMA: captured with the step
            self.monitor.observe(logs)

        return run

    def __call__(self, batch: Batch, iteration: int) -> None:
        if self.reason is not None:
            return super().__call__(batch, iteration)
        self.model.iteration = iteration
        phase = self.model.graph_phase(iteration)
        static = self._to_static(batch)
        g = self.graphs.get(phase)
        if g is not None:
            self.api.replay(g)
            self.replays += 1
            self.monitor.advance()
            return None
        done = self.eager_runs.get(phase, 0)
        if not self.eager_runs:
            self.first_phase = phase
        need = self.warmup if phase == self.first_phase else 1
        body = self._body(static)
        if done < need or not self.capture:
            self._warm(body, check=sum(self.eager_runs.values()) > 0)
            self.eager_runs[phase] = done + 1
            self.monitor.advance()
            return None
        if len(self.graphs) >= self.max_phases:
            self._fall_back(f"more than {self.max_phases} graph phases (graph_phase)")
            body()
            self.monitor.advance()
            return None
        self._capture(phase, body)
        self.monitor.advance()
        return None

    def _warm(self, body: Callable[[], None], check: bool) -> None:
        """One eager iteration on the side stream; from the second on, under the host-read check."""
        if not check:
            with self.api.side_stream():
                body()
            return
        detector, syncs = HostReadDetector(), []
        with self.api.side_stream(), self.api.sync_check(syncs), detector:
            body()
        found = detector.reads or syncs
        if found:
            self._fall_back(
                f"its training_step reads device values on the host ({'; '.join(dict.fromkeys(found))}), "
                "which a CUDA graph cannot replay (see the model contract in pygan.models)"
            )

    def _capture(self, phase, body: Callable[[], None]) -> None:
        rng = self.api.rng_state()
        try:
            g = self.api.capture(body)
        except Exception as exc:  # any capture failure means: run eagerly
            self.api.after_failure()
            self.api.set_rng_state(rng)
            for p in self.model.parameters():
                p.grad = None
            msg = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            self._fall_back(f"capture failed ({type(exc).__name__}: {msg})")
            body()  # this iteration, eagerly
            return
        self.graphs[phase] = g
        self.api.replay(g)  # the capture recorded the iteration; this runs it
        self.replays += 1
