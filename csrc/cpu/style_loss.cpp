// gram_diff: D = (Fx Fx^T - Fy Fy^T) / norm per sample (F = features viewed as [B, C, K]), and its
// backward grad_fx = S Fx / norm, grad_fy = -S Fy / norm with S = grad + grad^T.
//
// The op is GEMM-bound (2 C^2 K flops per sample and Gram, against C K + C^2 elements moved), so
// the GEMMs go to ATen's BLAS (at::cpu::mm_out / addmm_ on views: MKL here) and this file only
// decides *which* GEMMs and how they are spread over threads; the elementwise parts (scaling,
// mirroring, symmetrising, rounding to the output type) are vectorised passes.
//
// Forward. D is symmetric, so only its upper triangle is computed: D's rows are cut into panels of
// 32 or 64 rows and panel [r0, r1) gets D[r0:r1, r0:C] = Fx[r0:r1] Fx[r0:C]^T, then
// D[r0:r1, r0:C] -= Fy[r0:r1] Fy[r0:C]^T (addmm_ with beta = 1, alpha = -1: both Grams accumulate
// into one buffer; neither is materialised). With P panels that is (P + 1) / (2 P) of the full
// GEMM's flops (62.5% at C = 128 or 256, 56% at C = 512). Once a sample's panels are done, one
// vectorised pass over it scales by 1/norm, mirrors the upper triangle into the lower (D comes out
// exactly symmetric) and, for bf16/half, rounds once to the output type.
//
// Backward. Per sample S = (grad + grad^T) / norm (negated for y) is formed in a [C, C] buffer from
// grad's own strides (stride 0 included), then grad_f = S F, one GEMM per column chunk of K.
//
// Accumulation: float64 for float64; float32 for float32, bfloat16 and float16 (reduced inputs
// are converted to float32 once, the GEMMs run in float32 and D / the gradients are rounded once at
// the end).
//
// Threads. The work is cut into equal-cost items: forward (sample, panel pair) with panels j and
// P-1-j together (their sizes add up to a constant), backward (side, sample, column chunk of K).
// When there are at least as many items as threads, one at::parallel_for runs them with a
// single-threaded BLAS call each (inside a parallel region MKL does not spawn threads), and the
// elementwise work rides along in the same items (the item finishing a sample's last panel
// mirrors it; each thread forms S for the (side, sample) it is on): one fork/join for the whole
// op instead of one per GEMM and pass, which is also what keeps the op fast on a loaded machine.
// Otherwise (one sample with few panels) the items run in order on the calling thread and BLAS
// threads each GEMM itself. Small problems (< 2 MFLOP) skip all this: one batched ATen GEMM
// (at::cpu::bmm_out / baddbmm_) per operand, full Grams, plain loops for the rest.
//
// Layouts. Each sample's [C, K] matrix is handed to BLAS with its own strides when one of them is 1
// and the other is large enough (contiguous -> row-major, channels_last -> column-major, expanded
// batch -> stride 0 between samples); otherwise (e.g. a stride-2 last dim, or H/W strides that do
// not flatten) it is copied once. Outputs are contiguous.
#include "common.h"

#include <ATen/ops/addmm_cpu_dispatch.h>
#include <ATen/ops/baddbmm_cpu_dispatch.h>
#include <ATen/ops/bmm_cpu_dispatch.h>
#include <ATen/ops/mm_cpu_dispatch.h>

#include <atomic>
#include <memory>
#include <optional>
#include <string_view>

namespace pygan::cpu {
namespace {

constexpr int64_t kTile = 16;    // square tiles of the mirror / symmetrise passes
constexpr int64_t kChunkK = 512; // target columns per backward item

inline int64_t divup(int64_t a, int64_t b) { return (a + b - 1) / b; }

bool parse_chw(std::string_view s, const char* op) {
  if (s == "chw") return true;
  if (s == "hw") return false;
  TORCH_CHECK(false, "pygan::", op, ": normalize must be 'chw' or 'hw', got '", s, "'");
}

struct Dims {
  int64_t B, C, K;
  double norm;  // C*K ("chw") or K ("hw"); >= 1 (K = 0 gives an all-zero Gram, not 0/0)
};

Dims dims_of(const at::Tensor& f, bool chw) {
  int64_t k = 1;
  for (int64_t d = 2; d < f.dim(); ++d) k *= f.size(d);
  const int64_t c = f.size(1);
  const double n = static_cast<double>(chw ? c * k : k);
  return {f.size(0), c, k, n < 1 ? 1.0 : n};
}

void check_features(const at::Tensor& fx, const std::optional<at::Tensor>& fy, const char* op) {
  check_float_cpu(fx, "fx");
  TORCH_CHECK(fx.dim() == 3 || fx.dim() == 4, "pygan::", op, ": fx must be [B, C, H, W] or [B, C, N], got ",
              fx.sizes());
  if (fy.has_value()) {
    check_float_cpu(*fy, "fy");
    check_same(fx, "fx", *fy, "fy");
  }
}

// Whether every sample of F ([B, C, K]) is a matrix BLAS takes as it is: row-major (stride(2) == 1,
// stride(1) >= K) or column-major (stride(1) == 1, stride(2) >= C); size-1 dims take any stride.
bool blas_ready(const at::Tensor& F) {
  const int64_t c = F.size(1), k = F.size(2), sc = F.stride(1), sk = F.stride(2);
  const bool row = (sk == 1 || k == 1) && (sc >= k || c == 1);
  const bool col = (sc == 1 || c == 1) && (sk >= c || k == 1);
  return row || col;
}

// F = f viewed as [B, C, K] in the accumulation type, each sample a BLAS-ready matrix. A view of f
// when possible (reshape flattens H, W without copying when their strides allow, channels_last
// included; .to() keeps dense strides), a copy otherwise.
at::Tensor as_matrices(const at::Tensor& f, const Dims& d, at::ScalarType acc) {
  at::Tensor F = f.reshape({d.B, d.C, d.K});
  if (F.scalar_type() != acc) F = F.to(acc);
  if (!blas_ready(F)) F = F.contiguous();
  return F;
}

// dst[0:n) = (T) (src[0:n) * s), vectorised in opmath.
template <typename T>
inline void scale_store(T* dst, const opmath_t<T>* src, opmath_t<T> s, int64_t n) {
  using IO = VecIO<T>;
  using fVec = typename IO::fVec;
  constexpr int64_t S = IO::kStep;
  constexpr int64_t W = fVec::size();
  const fVec vs(s);
  int64_t i = 0;
  for (; i + S <= n; i += S) {
    typename IO::Pack p;
    for (int q = 0; q < IO::kParts; ++q) p[q] = fVec::loadu(src + i + q * W) * vs;
    IO::store(dst + i, p);
  }
  if (i < n) {
    const int64_t m = n - i;
    typename IO::Pack p;
    for (int q = 0; q < IO::kParts; ++q) {
      const int64_t mq = std::min<int64_t>(std::max<int64_t>(m - q * W, 0), W);
      p[q] = (mq > 0 ? fVec::loadu(src + i + q * W, mq) : fVec(0)) * vs;
    }
    IO::store(dst + i, p, m);
  }
}

// Below this many flops an op is "small": one batched ATen GEMM per operand (a single BLAS call
// or ATen's small-matrix loop) and plain loops for the rest. Per-item calls and a parallel region
// cost more than such a problem (and far more on a loaded machine, where every fork/join can wait
// for a descheduled thread).
constexpr double kSmallFlops = 1 << 21;

// Runs fn(begin, end) over the items [0, n): one parallel region with single-threaded BLAS inside
// when there are enough items for every thread, else all in order on the calling thread (BLAS
// then threads each call itself).
template <typename Fn>
void run_items(int64_t n, const Fn& fn) {
  if (n > 1 && n >= at::get_num_threads()) {
    at::parallel_for(0, n, 1, fn);
  } else {
    fn(0, n);
  }
}

// One sample: out = inv * D with the lower triangle mirrored from the upper one (c >= r); D (the
// accumulation type, row stride C) may be the same memory as out. Tile by tile (I <= J), each tile
// reading only upper entries and writing its mirror tile before scaling itself in place, so no
// entry is read after it was scaled.
template <typename scalar_t>
void scale_mirror(const opmath_t<scalar_t>* D, scalar_t* out, opmath_t<scalar_t> inv, int64_t C) {
  using acc_t = opmath_t<scalar_t>;
  acc_t col[kTile];
  for (int64_t r0 = 0; r0 < C; r0 += kTile) {
    for (int64_t c0 = r0; c0 < C; c0 += kTile) {
      const int64_t nr = std::min(kTile, C - r0), nc = std::min(kTile, C - c0);
      for (int64_t j = 0; j < nc; ++j) {  // lower: out[c, r0 : min(r0 + nr, c)) = D[r, c]
        const int64_t c = c0 + j;
        const int64_t n = std::min(nr, c - r0);
        if (n <= 0) continue;
        for (int64_t i = 0; i < n; ++i) col[i] = D[(r0 + i) * C + c];
        scale_store(out + c * C + r0, col, inv, n);
      }
      for (int64_t i = 0; i < nr; ++i) {  // upper: out[r, max(c0, r) : c0 + nc)
        const int64_t r = r0 + i;
        const int64_t cs = std::max(c0, r);
        if (c0 + nc > cs) scale_store(out + r * C + cs, D + r * C + cs, inv, c0 + nc - cs);
      }
    }
  }
}

// One sample: s = scale * (g + g^T), contiguous [C, C] in the accumulation type, from g with row
// and column strides s1, s2 (0 included: a broadcast incoming gradient).
template <typename scalar_t>
void symmetrize(const scalar_t* g, int64_t s1, int64_t s2, opmath_t<scalar_t> scale, opmath_t<scalar_t>* s,
                int64_t C) {
  using acc_t = opmath_t<scalar_t>;
  acc_t t[kTile][kTile];
  acc_t col[kTile];
  for (int64_t r0 = 0; r0 < C; r0 += kTile) {
    for (int64_t c0 = r0; c0 < C; c0 += kTile) {
      const int64_t nr = std::min(kTile, C - r0), nc = std::min(kTile, C - c0);
      for (int64_t i = 0; i < nr; ++i) {
        for (int64_t j = 0; j < nc; ++j) {
          const int64_t r = r0 + i, c = c0 + j;
          t[i][j] = static_cast<acc_t>(g[r * s1 + c * s2]) + static_cast<acc_t>(g[c * s1 + r * s2]);
        }
      }
      for (int64_t i = 0; i < nr; ++i) scale_store(s + (r0 + i) * C + c0, t[i], scale, nc);
      if (r0 == c0) continue;  // a diagonal tile is symmetric: its rows were all of it
      for (int64_t j = 0; j < nc; ++j) {
        for (int64_t i = 0; i < nr; ++i) col[i] = t[i][j];
        scale_store(s + (c0 + j) * C + r0, col, scale, nr);
      }
    }
  }
}

at::Tensor gram_diff(const at::Tensor& fx, const std::optional<at::Tensor>& fy, c10::string_view normalize) {
  check_features(fx, fy, "gram_diff");
  const Dims d = dims_of(fx, parse_chw(normalize, "gram_diff"));
  at::Tensor out = at::empty({d.B, d.C, d.C}, fx.options());
  if (out.numel() == 0) return out;
  if (d.K == 0) return out.zero_();  // empty sums
  PYGAN_DISPATCH_FLOATING(fx.scalar_type(), "pygan::gram_diff", [&] {
    using acc_t = opmath_t<scalar_t>;
    constexpr bool reduced = !std::is_same_v<acc_t, scalar_t>;
    const at::ScalarType acc = c10::CppTypeToScalarType<acc_t>::value;
    const at::Tensor Fx = as_matrices(fx, d, acc);
    std::optional<at::Tensor> Fy;
    if (fy.has_value()) Fy = as_matrices(*fy, d, acc);
    at::Tensor D = reduced ? at::empty({d.B, d.C, d.C}, fx.options().dtype(acc)) : out;
    const acc_t* Dp = D.const_data_ptr<acc_t>();
    scalar_t* op = out.mutable_data_ptr<scalar_t>();
    const acc_t inv = static_cast<acc_t>(1.0 / d.norm);
    const int64_t CC = d.C * d.C;

    if (2.0 * d.B * CC * d.K * (Fy.has_value() ? 2 : 1) < kSmallFlops) {  // full Grams, batched
      at::cpu::bmm_out(D, Fx, Fx.transpose(1, 2));
      if (Fy.has_value()) at::cpu::baddbmm_(D, *Fy, Fy->transpose(1, 2), 1, -1);
      for (int64_t b = 0; b < d.B; ++b) scale_mirror<scalar_t>(Dp + b * CC, op + b * CC, inv, d.C);
      return;
    }
    // Rows per panel: 32, or 64 from C = 256 on (fewer, taller panels: the flops grow from 56% to
    // 62.5% of a full Gram at C = 256, but single-threaded MKL runs 64-row panels markedly faster
    // there; measured at C = 128/256/512).
    const int64_t panel_rows = d.C >= 256 ? 64 : 32;
    const int64_t P = divup(d.C, panel_rows);
    const int64_t Q = (P + 1) / 2;  // items per sample: panels {j, P-1-j}
    // The item that finishes a sample's last panel scales and mirrors that sample (acq_rel: it
    // sees the other items' GEMM writes), so the whole forward is one parallel region.
    std::unique_ptr<std::atomic<int64_t>[]> left(new std::atomic<int64_t>[d.B]);
    for (int64_t b = 0; b < d.B; ++b) left[b].store(Q, std::memory_order_relaxed);
    auto panel = [&](int64_t b, int64_t p) {
      const int64_t r0 = p * panel_rows, rows = std::min(panel_rows, d.C - r0), cols = d.C - r0;
      at::Tensor dst = D.select(0, b).narrow(0, r0, rows).narrow(1, r0, cols);
      const at::Tensor x = Fx.select(0, b);
      at::cpu::mm_out(dst, x.narrow(0, r0, rows), x.narrow(0, r0, cols).t());
      if (Fy.has_value()) {
        const at::Tensor y = Fy->select(0, b);
        at::cpu::addmm_(dst, y.narrow(0, r0, rows), y.narrow(0, r0, cols).t(), 1, -1);
      }
    };
    run_items(d.B * Q, [&](int64_t begin, int64_t end) {
      for (int64_t item = begin; item < end; ++item) {
        const int64_t b = item / Q, j = item % Q;
        panel(b, j);
        if (P - 1 - j != j) panel(b, P - 1 - j);
        if (left[b].fetch_sub(1, std::memory_order_acq_rel) == 1) {
          scale_mirror<scalar_t>(Dp + b * CC, op + b * CC, inv, d.C);
        }
      }
    });
  });
  return out;
}

std::tuple<at::Tensor, at::Tensor> gram_diff_backward(const at::Tensor& grad, const at::Tensor& fx,
                                                      const std::optional<at::Tensor>& fy,
                                                      c10::string_view normalize, bool need_x, bool need_y) {
  check_features(fx, fy, "gram_diff_backward");
  check_float_cpu(grad, "grad");
  const Dims d = dims_of(fx, parse_chw(normalize, "gram_diff_backward"));
  TORCH_CHECK(grad.dim() == 3 && grad.size(0) == d.B && grad.size(1) == d.C && grad.size(2) == d.C,
              "pygan::gram_diff_backward: grad must be [B, C, C] = [", d.B, ", ", d.C, ", ", d.C, "], got ",
              grad.sizes());
  TORCH_CHECK(grad.scalar_type() == fx.scalar_type(), "pygan::gram_diff_backward: grad must have fx's dtype ",
              fx.scalar_type(), ", got ", grad.scalar_type());
  need_y = need_y && fy.has_value();
  at::Tensor gx = need_x ? at::empty(fx.sizes(), fx.options()) : at::empty({0}, fx.options());
  at::Tensor gy = need_y ? at::empty(fx.sizes(), fx.options()) : at::empty({0}, fx.options());
  if ((!need_x && !need_y) || fx.numel() == 0) return {gx, gy};
  PYGAN_DISPATCH_FLOATING(fx.scalar_type(), "pygan::gram_diff_backward", [&] {
    using acc_t = opmath_t<scalar_t>;
    constexpr bool reduced = !std::is_same_v<acc_t, scalar_t>;
    const at::ScalarType acc = c10::CppTypeToScalarType<acc_t>::value;
    const auto acc_opts = fx.options().dtype(acc);
    const acc_t inv = static_cast<acc_t>(1.0 / d.norm);
    const scalar_t* gp = grad.const_data_ptr<scalar_t>();
    const int64_t g0 = grad.stride(0), g1 = grad.stride(1), g2 = grad.stride(2);
    // Side 0 is x (S / norm times Fx), side 1 is y (-S / norm times Fy); only the needed ones.
    const at::Tensor F[2] = {need_x ? as_matrices(fx, d, acc) : at::Tensor(),
                             need_y ? as_matrices(*fy, d, acc) : at::Tensor()};
    at::Tensor G[2] = {need_x ? gx.view({d.B, d.C, d.K}) : at::Tensor(),
                       need_y ? gy.view({d.B, d.C, d.K}) : at::Tensor()};
    const int64_t sides[2] = {need_x ? 0 : 1, 1};
    const int64_t nsides = need_x && need_y ? 2 : 1;
    const acc_t sign[2] = {acc_t(1), acc_t(-1)};

    if (2.0 * nsides * d.B * d.C * d.C * d.K < kSmallFlops) {  // batched, one call per side
      at::Tensor S = at::empty({d.B, d.C, d.C}, acc_opts);
      acc_t* sp = S.mutable_data_ptr<acc_t>();
      for (int64_t si = 0; si < nsides; ++si) {
        const int64_t side = sides[si];
        for (int64_t b = 0; b < d.B; ++b) {
          symmetrize<scalar_t>(gp + b * g0, g1, g2, sign[side] * inv, sp + b * d.C * d.C, d.C);
        }
        if constexpr (reduced) {
          at::Tensor tmp = at::empty({d.B, d.C, d.K}, acc_opts);
          at::cpu::bmm_out(tmp, S, F[side]);
          scale_store(G[side].mutable_data_ptr<scalar_t>(), tmp.const_data_ptr<acc_t>(), acc_t(1), tmp.numel());
        } else {
          at::cpu::bmm_out(G[side], S, F[side]);
        }
      }
      return;
    }
    // Items: (side, sample, chunk of K columns). Chunks of about kChunkK columns (a float32
    // [C, chunk] block stays in cache for the bf16/half rounding), and enough of them (down to 64
    // columns) to give every thread a few items. Each thread forms S for its current (side,
    // sample) in its own buffer, again only when that changes: no separate pass, one region.
    int64_t nk = divup(d.K, kChunkK);
    nk = std::max(nk, std::min(divup(4 * at::get_num_threads(), nsides * d.B), divup(d.K, 64)));
    const int64_t kc = divup(d.K, nk);
    const int64_t nchunks = divup(d.K, kc);
    run_items(nsides * d.B * nchunks, [&](int64_t begin, int64_t end) {
      at::Tensor S = at::empty({d.C, d.C}, acc_opts);
      int64_t have = -1;  // (side, sample) whose S is in the buffer
      for (int64_t item = begin; item < end; ++item) {
        const int64_t sb = item / nchunks, ch = item % nchunks;
        const int64_t side = sides[sb / d.B], b = sb % d.B;
        if (sb != have) {
          symmetrize<scalar_t>(gp + b * g0, g1, g2, sign[side] * inv, S.mutable_data_ptr<acc_t>(), d.C);
          have = sb;
        }
        const int64_t k0 = ch * kc, n = std::min(kc, d.K - k0);
        const at::Tensor f = F[side].select(0, b).narrow(1, k0, n);
        if constexpr (reduced) {
          at::Tensor tmp = at::empty({d.C, n}, acc_opts);
          at::cpu::mm_out(tmp, S, f);
          const acc_t* tp = tmp.const_data_ptr<acc_t>();
          scalar_t* dst = G[side].mutable_data_ptr<scalar_t>() + b * d.C * d.K + k0;
          for (int64_t r = 0; r < d.C; ++r) scale_store(dst + r * d.K, tp + r * n, acc_t(1), n);
        } else {
          at::Tensor dst = G[side].select(0, b).narrow(1, k0, n);
          at::cpu::mm_out(dst, S, f);
        }
      }
    });
  });
  return {gx, gy};
}

}  // namespace

TORCH_LIBRARY_IMPL(pygan, CPU, m) {
  m.impl("gram_diff", &gram_diff);
  m.impl("gram_diff_backward", &gram_diff_backward);
}

}  // namespace pygan::cpu
