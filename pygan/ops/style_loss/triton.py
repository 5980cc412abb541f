"""Triton kernels for the Gram difference behind ``gram_matrix`` / ``style_loss``:
``torch.ops.pygan_triton.gram_diff`` and ``gram_diff_backward``.

Same contract as ``pygan::gram_diff``: ``D = (Fx Fx^T - Fy Fy^T) / norm`` (``Fx Fx^T / norm`` without
``fy``), ``F`` = the features as ``[B, C, K]``, ``K = H*W`` (or N for 3-D input), ``norm = C*K``
("chw") or ``K`` ("hw"), at least 1 (an empty feature map has an all-zero Gram); ``D`` is
``[B, C, C]``, contiguous, in fx's dtype, accumulated in float32 (float64 for float64) and rounded
once. Backward: ``S = grad + grad^T``, ``grad_fx = S Fx / norm``,
``grad_fy = -S Fy / norm`` (contiguous, fx's shape; an empty ``[0]`` tensor when not needed).

Forward: a GEMM with a tiny ``C x C`` output and a huge ``K``. Only the upper triangle of output
tiles (``ti <= tj``) is computed, each program a ``BM x BM`` tile over one slice of K (split-K); both
Grams go into one accumulator (``Fy`` tiles enter negated: ``[Fx|Fy] [Fx|-Fy]^T``). With one K slice
the program writes its tile and the mirrored tile directly (the diagonal tile's halves split so that
every element is written exactly once); with several, slices go to a float32 (float64) workspace and
a second kernel sums them in a fixed order, divides by ``norm``, rounds once and writes both
triangles: deterministic, no float atomics. ``tl.dot`` runs on tensor cores for bf16/fp16 and in
3xTF32 (``input_precision="tf32x3"``: each float32 operand split into a tf32 high part and a tf32
residual, three tensor-core products) for float32 — float32-level accuracy (on an H100 the relative
error of the loss and gradients vs float64 was 1.7e-7 / 3.7e-7, IEEE FFMA's 5e-8 / 1.6e-6) at 2x the
speed of IEEE float32 ``tl.dot``; float64 uses a broadcast-multiply
reduction (no fp64 ``tl.dot`` assumed).

Backward: one tiled GEMM ``[C x C] @ [C x K]`` per side that needs a gradient; the ``S`` tile is built
on the fly from two (strided, possibly stride-0) loads of ``grad``. Fake kernels and autograd are the
C++ op's (:mod:`pygan.ops.style_loss.contract`): double backward through ``bmm`` and the backward op
itself (it is bilinear in ``grad`` and the features).
"""

import torch
import triton
import triton.language as tl

from pygan.ops._triton_common import INTERPRET, acc_tl, acc_torch, launch, num_sms, op, to_out
from pygan.ops.style_loss.contract import fake_gram_diff, fake_gram_diff_backward, register_autograd_rules
from pygan.ops.style_loss.reference import gram_norm

__all__ = ["gram_diff", "gram_diff_backward"]

# Split-K: aim for this many programs per multiprocessor, with at least MIN_K_ITERS K-blocks each.
PROGRAMS_PER_SM = 2
MIN_K_ITERS = 4
# float32 tl.dot precision. "tf32x3" keeps float32 accuracy on tensor cores (H100, both grads of
# (64,256,64,64): 3.03 ms, rel. grad error 3.7e-7 vs float64; "ieee" 5.96 ms, 1.6e-6; plain "tf32"
# 2.20 ms but 1.5e-3, which float32 users do not expect). Measured with bench/gpu_probe.py.
FP32_PRECISION = "tf32x3"


def _norm(c: int, k: int, normalize: str) -> int:
    if normalize not in ("chw", "hw"):
        raise ValueError(f"gram_diff: normalize must be 'chw' or 'hw', got {normalize!r}")
    return gram_norm(c, k, normalize)


def _as_bck(f: torch.Tensor):
    # Plain ints: under torch.compile a symbolic size is specialized here (launch geometry).
    b, c = int(f.shape[0]), int(f.shape[1])
    k = 1
    for s in f.shape[2:]:
        k *= int(s)
    return f.reshape(b, c, k), b, c, k


def _tiles(c: int, dtype: torch.dtype) -> tuple[int, int, int]:
    """(BM, BK, num_warps) of the forward kernel."""
    bm = 16 if c <= 16 else (32 if c <= 32 else 64)
    if INTERPRET:
        return bm, 64, 4
    if dtype == torch.float64:
        return (16 if c <= 16 else 32), 8, 4
    return bm, (64 if dtype in (torch.bfloat16, torch.float16) else 32), 4


@triton.jit
def _mma(a, b, acc, USE_DOT: tl.constexpr, PREC: tl.constexpr, INTERP: tl.constexpr):
    """acc + a @ b with a: [M, K], b: [K, N] (operands already upcast when interpreting)."""
    if USE_DOT:
        acc = tl.dot(a, b, acc, input_precision=PREC)
    else:
        acc += tl.sum(a[:, :, None].to(acc.dtype) * b[None, :, :].to(acc.dtype), axis=1)
    return acc


@triton.jit
def _op(x, ACC: tl.constexpr, INTERP: tl.constexpr):
    """A loaded GEMM operand: kept in its dtype on a GPU (tensor cores for bf16/fp16); upcast under
    the interpreter, whose bf16 arithmetic (negation, dot) works on raw bits."""
    if INTERP:
        x = x.to(ACC)
    return x


@triton.jit
def _gram_fwd_kernel(
    x_ptr,
    y_ptr,
    d_ptr,
    ws_ptr,
    B,
    C,
    K,
    norm,
    sxb,
    sxc,
    sxk,
    syb,
    syc,
    syk,
    T,
    k_per_split,
    HAS_Y: tl.constexpr,
    DIRECT: tl.constexpr,
    USE_DOT: tl.constexpr,
    PREC: tl.constexpr,
    ACC: tl.constexpr,
    INTERP: tl.constexpr,
    BM: tl.constexpr,
    BK: tl.constexpr,
):
    # Program (b * n_upper + t, split): grid axis 0 holds batch x tiles (axes 1-2 are limited to 65535).
    n_upper = T * (T + 1) // 2
    t = tl.program_id(0) % n_upper
    b = (tl.program_id(0) // n_upper).to(tl.int64)
    split = tl.program_id(1)
    # Upper-triangle tile (ti <= tj) number t, row-major.
    ti = t * 0
    rem = t
    row_len = t * 0 + T  # a tensor: T == 1 is specialized to a constant, which a loop cannot update
    while rem >= row_len:
        rem -= row_len
        ti += 1
        row_len -= 1
    tj = ti + rem
    r = ti * BM + tl.arange(0, BM)
    c = tj * BM + tl.arange(0, BM)
    rmask = r < C
    cmask = c < C
    k0 = split * k_per_split
    k1 = tl.minimum(k0 + k_per_split, K)
    acc = tl.zeros([BM, BM], dtype=ACC)
    for k in range(k0, k1, BK):
        ks = k + tl.arange(0, BK)
        kmask = ks < k1
        xi = _op(
            tl.load(
                x_ptr + b * sxb + r[:, None] * sxc + ks[None, :] * sxk,
                mask=rmask[:, None] & kmask[None, :],
                other=0.0,
            ),
            ACC,
            INTERP,
        )
        xj = _op(
            tl.load(
                x_ptr + b * sxb + c[None, :] * sxc + ks[:, None] * sxk,
                mask=cmask[None, :] & kmask[:, None],
                other=0.0,
            ),
            ACC,
            INTERP,
        )
        acc = _mma(xi, xj, acc, USE_DOT, PREC, INTERP)
        if HAS_Y:
            yi = _op(
                tl.load(
                    y_ptr + b * syb + r[:, None] * syc + ks[None, :] * syk,
                    mask=rmask[:, None] & kmask[None, :],
                    other=0.0,
                ),
                ACC,
                INTERP,
            )
            yj = _op(
                tl.load(
                    y_ptr + b * syb + c[None, :] * syc + ks[:, None] * syk,
                    mask=cmask[None, :] & kmask[:, None],
                    other=0.0,
                ),
                ACC,
                INTERP,
            )
            acc = _mma(-yi, yj, acc, USE_DOT, PREC, INTERP)
    if DIRECT:
        out = acc / norm
        base = d_ptr + b * C * C
        # Each element once: the tile writes its elements with r <= c directly and those with r < c
        # mirrored. In an off-diagonal tile (ti < tj) every r is below every c, so it writes itself
        # and its mirror whole; a diagonal tile writes its upper half and mirrors the strict part.
        lower_ok = r[:, None] <= c[None, :]
        upper_ok = r[:, None] < c[None, :]
        m = rmask[:, None] & cmask[None, :]
        tl.store(
            base + r[:, None] * C + c[None, :], to_out(out, d_ptr.dtype.element_ty, INTERP), mask=m & lower_ok
        )
        tl.store(
            base + c[None, :] * C + r[:, None], to_out(out, d_ptr.dtype.element_ty, INTERP), mask=m & upper_ok
        )
    else:
        wbase = ws_ptr + (split.to(tl.int64) * B + b) * C * C
        tl.store(wbase + r[:, None] * C + c[None, :], acc, mask=rmask[:, None] & cmask[None, :])


@triton.jit
def _gram_reduce_kernel(
    ws_ptr, d_ptr, B, C, norm, SPLIT, NB, ACC: tl.constexpr, INTERP: tl.constexpr, BR: tl.constexpr
):
    # Program b * NB^2 + i * NB + j: output block (i, j) of sample b.
    nb2 = NB * NB
    b = (tl.program_id(0) // nb2).to(tl.int64)
    ij = tl.program_id(0) % nb2
    r = (ij // NB) * BR + tl.arange(0, BR)
    c = (ij % NB) * BR + tl.arange(0, BR)
    m = (r[:, None] < C) & (c[None, :] < C)
    # Only the upper triangle was computed: element (r, c) lives at (min, max).
    lo = tl.minimum(r[:, None], c[None, :])
    hi = tl.maximum(r[:, None], c[None, :])
    acc = tl.zeros([BR, BR], dtype=ACC)
    for s in range(0, SPLIT):
        acc += tl.load(ws_ptr + (s * B + b) * C * C + lo * C + hi, mask=m, other=0.0)
    out = acc / norm
    tl.store(
        d_ptr + b * C * C + r[:, None] * C + c[None, :], to_out(out, d_ptr.dtype.element_ty, INTERP), mask=m
    )


@triton.jit
def _gram_bwd_kernel(
    g_ptr,
    f_ptr,
    o_ptr,
    C,
    K,
    norm,
    sgb,
    sgr,
    sgc,
    sfb,
    sfc,
    sfk,
    KB,
    NEG: tl.constexpr,
    USE_DOT: tl.constexpr,
    PREC: tl.constexpr,
    ACC: tl.constexpr,
    INTERP: tl.constexpr,
    BM: tl.constexpr,
    BN: tl.constexpr,
    BJ: tl.constexpr,
):
    # Program (b * KB + kb, row block): K blocks and batch on axis 0 (axes 1-2 are limited to 65535).
    b = (tl.program_id(0) // KB).to(tl.int64)
    ks = (tl.program_id(0) % KB).to(tl.int64) * BN + tl.arange(0, BN)
    r = tl.program_id(1) * BM + tl.arange(0, BM)
    rmask = r < C
    kmask = ks < K
    acc = tl.zeros([BM, BN], dtype=ACC)
    for j0 in range(0, C, BJ):
        js = j0 + tl.arange(0, BJ)
        jmask = js < C
        sm = rmask[:, None] & jmask[None, :]
        s = tl.load(g_ptr + b * sgb + r[:, None] * sgr + js[None, :] * sgc, mask=sm, other=0.0).to(ACC)
        s += tl.load(g_ptr + b * sgb + js[None, :] * sgr + r[:, None] * sgc, mask=sm, other=0.0).to(ACC)
        f = tl.load(
            f_ptr + b * sfb + js[:, None] * sfc + ks[None, :] * sfk,
            mask=jmask[:, None] & kmask[None, :],
            other=0.0,
        )
        f = _op(f, ACC, INTERP)
        if USE_DOT:
            if not INTERP:
                s = s.to(f.dtype)  # bf16/fp16 tensor-core operands (float32 stays float32)
        acc = _mma(s, f, acc, USE_DOT, PREC, INTERP)
    out = acc / norm
    if NEG:
        out = -out
    tl.store(
        o_ptr + b * C * K + r[:, None] * K + ks[None, :],
        to_out(out, o_ptr.dtype.element_ty, INTERP),
        mask=rmask[:, None] & kmask[None, :],
    )


def _split_k(tiles: int, k: int, bk: int, device: torch.device) -> int:
    kb = triton.cdiv(k, bk)
    if INTERPRET:
        # Few programs (the interpreter's cost is per program), but exercise the split-K path.
        return max(1, min(3, kb))
    want = triton.cdiv(PROGRAMS_PER_SM * num_sms(device), max(tiles, 1))
    return max(1, min(want, triton.cdiv(kb, MIN_K_ITERS)))


@op("gram_diff", fake_gram_diff)
def gram_diff(fx: torch.Tensor, fy: torch.Tensor | None, normalize: str) -> torch.Tensor:
    F, b, c, k = _as_bck(fx)
    norm = _norm(c, k, normalize)
    Fy = _as_bck(fy)[0] if fy is not None else F
    d = torch.empty((b, c, c), dtype=fx.dtype, device=fx.device)
    if d.numel() == 0:
        return d
    bm, bk, warps = _tiles(c, fx.dtype)
    t = triton.cdiv(c, bm)
    n_upper = t * (t + 1) // 2
    split = _split_k(n_upper * b, k, bk, fx.device)
    k_per_split = triton.cdiv(triton.cdiv(max(k, 1), split), bk) * bk
    split = max(1, triton.cdiv(k, k_per_split))
    direct = split == 1
    ws = d if direct else torch.empty((split, b, c, c), dtype=acc_torch(fx.dtype), device=fx.device)
    common = dict(
        HAS_Y=fy is not None,
        USE_DOT=INTERPRET or fx.dtype != torch.float64,
        PREC=FP32_PRECISION,
        ACC=acc_tl(fx.dtype),
        INTERP=INTERPRET,
        BM=bm,
        BK=bk,
    )
    launch(_gram_fwd_kernel)[(n_upper * b, split)](
        F,
        Fy,
        d,
        ws,
        b,
        c,
        k,
        norm,
        *F.stride(),
        *Fy.stride(),
        t,
        k_per_split,
        DIRECT=direct,
        **common,
        num_warps=warps,
        num_stages=3 if not INTERPRET else 1,
    )
    if not direct:
        br = 32 if c > 16 else 16
        nb = triton.cdiv(c, br)
        launch(_gram_reduce_kernel)[(nb * nb * b,)](
            ws, d, b, c, norm, split, nb, ACC=acc_tl(fx.dtype), INTERP=INTERPRET, BR=br, num_warps=4
        )
    return d


@op("gram_diff_backward", fake_gram_diff_backward)
def gram_diff_backward(
    grad: torch.Tensor, fx: torch.Tensor, fy: torch.Tensor | None, normalize: str, need_x: bool, need_y: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    outs = []
    for f, need, neg in ((fx, need_x, False), (fy, need_y, True)):
        if not need or f is None:
            outs.append(fx.new_empty((0,)))
            continue
        F, b, c, k = _as_bck(f)
        norm = _norm(c, k, normalize)
        out = torch.empty(f.shape, dtype=f.dtype, device=f.device)
        if out.numel() > 0:
            if INTERPRET:
                bm, bn, bj, warps = (16 if c <= 16 else 32), 64, (16 if c <= 16 else 32), 4
            elif f.dtype == torch.float64:
                bm, bn, bj, warps = 16, 32, 8, 4
            else:
                bm, bn, bj, warps = 64, 64, 32, 4
            kb = triton.cdiv(k, bn)
            launch(_gram_bwd_kernel)[(kb * b, triton.cdiv(c, bm))](
                grad,
                F,
                out,
                c,
                k,
                norm,
                *grad.stride(),
                *F.stride(),
                kb,
                NEG=neg,
                USE_DOT=INTERPRET or f.dtype != torch.float64,
                PREC=FP32_PRECISION,
                ACC=acc_tl(f.dtype),
                INTERP=INTERPRET,
                BM=bm,
                BN=bn,
                BJ=bj,
                num_warps=warps,
                num_stages=3 if not INTERPRET else 1,
            )
        outs.append(out)
    return outs[0], outs[1]


# The op objects are what pygan.ops.style_loss / gram_matrix call (arguments validated there).
register_autograd_rules(gram_diff, gram_diff_backward)
