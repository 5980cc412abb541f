"""Post-hoc check for docs/experiments/ema.md (not part of pygan):
``python docs/experiments/ema_bn.py RUN [RUN ...]``.

The EMA generator's BatchNorm running statistics were collected with the trained weights. Re-estimate
them ("standing statistics", as PyTorch-StudioGAN offers: 100 batches of 64 noise vectors, cumulative
average) and score the digits FD again: raw, EMA, EMA + re-estimated statistics, raw + re-estimated."""

import sys

import torch

from pygan.evaluate import evaluate_run
from pygan.runs import load_run

torch.set_num_threads(1)


def loader_for(run, ema, standing):
    def load(_):
        from pygan.evaluate import run_data

        model, config, data = load_run(run, ema=ema)
        if standing:
            g = model.generator
            bns = [m for m in g.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
            for m in bns:
                m.reset_running_stats()
                m.momentum = None  # cumulative average
            g.train()
            gen = torch.Generator().manual_seed(123)
            with torch.no_grad():
                for _ in range(100):
                    g(model.noise(64, gen))
            g.eval()
        return model, config, run_data(data)

    return load


for run in sys.argv[1:]:
    out = []
    for name, ema, standing in (
        ("raw", False, False),
        ("ema", True, False),
        ("ema+bn", True, True),
        ("raw+bn", False, True),
    ):
        r = evaluate_run(run, loader=loader_for(run, ema, standing), metrics=["fid"], write=False)
        out.append(f"{name} {r['metrics']['fid']['value']:.2f}")
    print(run, " | ".join(out), flush=True)
