"""Child process for the kill-during-save test: saves large checkpoints in a loop, announcing each."""

import sys

import torch

from pygan.runs import CHECKPOINT_FORMAT, save_checkpoint

path, mb = sys.argv[1], int(sys.argv[2])
n = mb * 2**20 // 4
for k in range(1, 1000):
    print(f"begin {k}", flush=True)
    save_checkpoint({"format": CHECKPOINT_FORMAT, "step": k, "blob": torch.full((n,), float(k))}, path)
    print(f"done {k}", flush=True)
