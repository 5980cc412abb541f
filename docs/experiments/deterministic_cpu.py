"""The CPU cost of ``--deterministic`` for docs/training.md:
``python docs/experiments/deterministic_cpu.py``.

The main job's step (wgan-gp, digits16, width 32, batch 64, 5 critic steps): CPU time per iteration,
one thread, ``torch.use_deterministic_algorithms`` off/on interleaved 5 times, medians and ranges."""

import statistics
import time

import torch

from pygan.data import Loader, load_data
from pygan.graphs import EagerStep, LossMonitor
from pygan.models import build_model

torch.set_num_threads(1)
data = load_data("digits16")


def run(det, n=20):
    torch.manual_seed(0)
    m = build_model("wgan-gp", data.info, ["width=32"])
    m.optimizers = m.configure_optimizers()
    loader = Loader(data, m.batch_size * m.batches_per_step, seed=0)
    r = EagerStep(m, LossMonitor(1000), torch.device("cpu"))
    torch.use_deterministic_algorithms(det)
    try:
        for i in range(3):
            r(loader.next(), i)
        t0 = time.process_time()
        for i in range(3, 3 + n):
            r(loader.next(), i)
        return (time.process_time() - t0) / n
    finally:
        torch.use_deterministic_algorithms(False)


res = {False: [], True: []}
for _ in range(5):
    for det in (False, True):
        res[det].append(run(det))
for det, v in res.items():
    med, lo, hi = statistics.median(v) * 1e3, min(v) * 1e3, max(v) * 1e3
    print(f"deterministic={det}: median {med:.1f} ms/iter CPU, range {lo:.1f}-{hi:.1f}")
print(f"ratio det/default (medians): {statistics.median(res[True]) / statistics.median(res[False]):.3f}")
