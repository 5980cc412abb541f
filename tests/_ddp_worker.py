"""Worker for the 2-process DDP test (spawned; must be importable at module level)."""

import json
import os
import socket

import torch


def free_port() -> int:
    """A free local TCP port for the process group's rendezvous."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def init_env(rank: int, world: int, port: int) -> None:
    """The torchrun-style environment of ``rank`` in a ``world``-process group on this host, and one
    intra-op thread (two processes share the 2-core machine)."""
    os.environ.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        RANK=str(rank),
        WORLD_SIZE=str(world),
        LOCAL_RANK=str(rank),
    )
    torch.set_num_threads(1)


def _teardown(dist) -> None:
    """Leave the process group together: a barrier first, so that no rank destroys its gloo pairs
    while the other is still sending on them (a rank torn down early could abort the other with
    "terminate called without an active exception" on a loaded machine)."""
    try:
        dist.barrier()
    finally:
        dist.destroy_process_group()


def run(rank: int, world: int, port: int, out: str, steps: int) -> None:
    init_env(rank, world, port)
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel as DDP

    from pygan.models import as_floats
    from pygan.models.wgan_gp import WGANGP
    from pygan.ops import gradient_penalty
    from pygan.train import train

    logs = []
    orig = WGANGP.training_step

    def recording(self, batch):
        out_ = orig(self, batch)
        logs.append(as_floats(out_))
        return out_

    WGANGP.training_step = recording
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        model = train(
            "wgan-gp",
            "digits16",
            os.path.join(out, "run"),
            steps,
            overrides=["width=4", "batch_size=4", "n_critic=2"],
            progress=False,
            sample_every=0,
            tensorboard=False,
            log_every=1,
        )
        torch.save({k: v for k, v in model.state_dict().items()}, os.path.join(out, f"rank{rank}.pt"))
        # the penalty's double backward through a DDP critic: gradients averaged over the ranks
        critic = model.critic.double()
        g = torch.Generator().manual_seed(100 + rank)
        real = torch.rand(3, 1, 16, 16, generator=g, dtype=torch.float64) * 2 - 1
        fake = torch.rand(3, 1, 16, 16, generator=g, dtype=torch.float64) * 2 - 1
        alpha = torch.rand(3, generator=g, dtype=torch.float64)
        ddp = DDP(critic)
        critic.zero_grad()
        loss = ddp(fake).mean() - ddp(real).mean() + gradient_penalty(ddp, real, fake, alpha=alpha)
        loss.backward()
        grads = {n: p.grad.clone() for n, p in critic.named_parameters()}
        torch.save(
            {"real": real, "fake": fake, "alpha": alpha, "grads": grads}, os.path.join(out, f"gp{rank}.pt")
        )
        with open(os.path.join(out, f"logs{rank}.json"), "w") as f:
            json.dump(logs, f)
    finally:
        _teardown(dist)
