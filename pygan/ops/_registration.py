"""Registration shared by every fused op's two implementations.

Each op's contract module (``pygan/ops/<op>/contract.py``) defines its fake kernels once, and both
namespaces use them: the native ``pygan::`` ops through :func:`register_native` (below, when the C++
library is loaded) and the Triton ``pygan_triton::`` ops in ``pygan/ops/<op>/triton.py`` (fake
kernel given to :func:`pygan.ops._triton_common.op`), so a fix to a fake kernel's strides applies to
both. The autograd formulas exist twice: in C++ for the native ops (``csrc/autograd/<op>.cpp``,
registered at the Autograd key, so a call costs no Python autograd.Function) and in Python for the
Triton ops (``register_autograd_rules(fwd, bwd)`` in each contract module, registered on the custom
ops). Both follow the same equations (written beside each), and the tests hold both to the
references with gradcheck/gradgradcheck.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from pygan import _ext

__all__ = ["Rule", "register_autograd_pair", "register_native"]

# (backward, setup_context) as torch.library.register_autograd takes them.
Rule = tuple[Callable, Callable]


def register_autograd_pair(fwd, bwd, rule: Rule, rule_bwd: Rule) -> None:
    """Registers ``rule`` as the autograd formula of the op ``fwd`` and ``rule_bwd`` as that of its
    backward op ``bwd`` (op handles: ``pygan::`` OpOverloads or custom-op objects). Giving the backward
    op a formula too is what makes double backward exact rather than silently zero."""
    torch.library.register_autograd(fwd, rule[0], setup_context=rule[1])
    torch.library.register_autograd(bwd, rule_bwd[0], setup_context=rule_bwd[1])


def register_native(name: str, fake: Callable, fake_backward: Callable) -> None:
    """Fake kernels of the native ops ``pygan::<name>`` and ``pygan::<name>_backward``; nothing when the
    C++ library is not loaded (the ops do not exist then). Their autograd is C++ (csrc/autograd/<op>.cpp,
    at the Autograd key): a Python formula here cost more host time per call than the models' ops
    themselves (pygan issue 13). The Triton ops keep the Python formulas of the contract modules."""
    if not _ext.native_loaded():
        return
    torch.library.register_fake(f"pygan::{name}", fake)
    torch.library.register_fake(f"pygan::{name}_backward", fake_backward)
