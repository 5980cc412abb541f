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
// GEMM's flops (62.5% at C = 128 or 256, 56% at C = 512). One pass then scales by 1/norm, mirrors
// the upper triangle into the lower (D comes out exactly symmetric) and, for bf16/half, rounds
// once to the output type.
//
// Accumulation: float64 for float64; float32 for float32, bfloat16 and float16 (reduced inputs
// are converted to float32 once, the GEMMs run in float32 and D / the gradients are rounded once at
// the end).
//
// Threads. The work is cut into equal-cost items: forward (sample, panel pair) with panels j and
// P-1-j together (their sizes add up to a constant), backward (side, sample, column chunk of K).
// When there are at least as many items as threads, one at::parallel_for runs them with a
// single-threaded BLAS call each (inside a parallel region MKL does not spawn threads): one
// fork/join for the whole op instead of one per GEMM, which is also what keeps the op fast on a
// loaded machine. Otherwise (one sample with a small C) the items run in order on the calling
// thread and BLAS threads each GEMM itself. Small problems (< kSmallFlops) skip all this: one
// batched ATen GEMM (at::cpu::bmm_out / baddbmm_) per operand, full Grams.
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
// or ATen's small-matrix loop) instead of panels and items. Per-item calls and a parallel region
// cost more than such a problem (and far more on a loaded machine, where every fork/join can wait
// for a descheduled thread).
constexpr double kSmallFlops = 1 << 21;

// Runs fn(item) for item in [0, n): in one parallel region with single-threaded BLAS inside when
// there are enough items for every thread, else in order (BLAS then threads each call itself).
template <typename Fn>
void run_items(int64_t n, const Fn& fn) {
  if (n > 1 && n >= at::get_num_threads()) {
    at::parallel_for(0, n, 1, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) fn(i);
    });
  } else {
    for (int64_t i = 0; i < n; ++i) fn(i);
  }
}

// The upper triangle (c >= r) of D[b] = Fx[b] Fx[b]^T - Fy[b] Fy[b]^T, unscaled, by row panels.
void gram_upper(at::Tensor& D, const at::Tensor& Fx, const std::optional<at::Tensor>& Fy, const Dims& d) {
  const double flops = 2.0 * d.B * d.C * d.C * d.K * (Fy.has_value() ? 2 : 1);
  if (flops < kSmallFlops) {  // small: full Grams, two batched calls
    at::cpu::bmm_out(D, Fx, Fx.transpose(1, 2));
    if (Fy.has_value()) at::cpu::baddbmm_(D, *Fy, Fy->transpose(1, 2), 1, -1);
    return;
  }
  // Rows per panel: 32, or 64 from C = 256 on (fewer, taller panels: the flop saving shrinks from
  // 56% to 62.5% of a full Gram, but single-threaded MKL runs 64-row panels markedly faster there;
  // measured at C = 128/256/512).
  const int64_t panel_rows = d.C >= 256 ? 64 : 32;
  const int64_t P = divup(d.C, panel_rows);
  const int64_t Q = (P + 1) / 2;  // items per sample: panels {j, P-1-j}
  auto panel = [&](int64_t b, int64_t p) {
    const int64_t r0 = p * panel_rows, rows = std::min(panel_rows, d.C - r0), cols = d.C - r0;
    at::Tensor out = D.select(0, b).narrow(0, r0, rows).narrow(1, r0, cols);
    const at::Tensor x = Fx.select(0, b);
    at::cpu::mm_out(out, x.narrow(0, r0, rows), x.narrow(0, r0, cols).t());
    if (Fy.has_value()) {
      const at::Tensor y = Fy->select(0, b);
      at::cpu::addmm_(out, y.narrow(0, r0, rows), y.narrow(0, r0, cols).t(), 1, -1);
    }
  };
  run_items(d.B * Q, [&](int64_t item) {
    const int64_t b = item / Q, j = item % Q;
    panel(b, j);
    if (P - 1 - j != j) panel(b, P - 1 - j);
  });
}

// out[b] = inv * D[b] with the lower triangle mirrored from the upper one; D (accumulation type)
// may be the same memory as out. Tile pairs (I <= J) are independent: each reads only the upper
// entries of its tile (I, J) and writes that tile and its mirror, lower part first, so no entry is
// read after it was scaled.
template <typename scalar_t>
void scale_mirror(const opmath_t<scalar_t>* D, scalar_t* out, opmath_t<scalar_t> inv, int64_t B, int64_t C) {
  using acc_t = opmath_t<scalar_t>;
  const int64_t nt = divup(C, kTile);
  at::parallel_for(0, B * nt * nt, std::max<int64_t>(1, kGrain / (kTile * kTile)), [&](int64_t begin, int64_t end) {
    acc_t col[kTile];
    for (int64_t idx = begin; idx < end; ++idx) {
      const int64_t b = idx / (nt * nt), I = (idx / nt) % nt, J = idx % nt;
      if (J < I) continue;
      const int64_t r0 = I * kTile, c0 = J * kTile;
      const int64_t nr = std::min(kTile, C - r0), nc = std::min(kTile, C - c0);
      const acc_t* Db = D + b * C * C;
      scalar_t* ob = out + b * C * C;
      for (int64_t j = 0; j < nc; ++j) {  // lower: out[c, r0 : min(r0 + nr, c)) = D[r, c]
        const int64_t c = c0 + j;
        const int64_t n = std::min(nr, c - r0);
        if (n <= 0) continue;
        for (int64_t i = 0; i < n; ++i) col[i] = Db[(r0 + i) * C + c];
        scale_store(ob + c * C + r0, col, inv, n);
      }
      for (int64_t i = 0; i < nr; ++i) {  // upper: out[r, max(c0, r) : c0 + nc)
        const int64_t r = r0 + i;
        const int64_t cs = std::max(c0, r);
        if (c0 + nc > cs) scale_store(ob + r * C + cs, Db + r * C + cs, inv, c0 + nc - cs);
      }
    }
  });
}

// sx[b] = inv * (g[b] + g[b]^T) and sy = -sx (either may be null), contiguous [B, C, C] in the
// accumulation type, from g with any strides (stride 0 included).
template <typename scalar_t>
void symmetrize(const at::Tensor& grad, opmath_t<scalar_t> inv, opmath_t<scalar_t>* sx, opmath_t<scalar_t>* sy,
                int64_t B, int64_t C) {
  using acc_t = opmath_t<scalar_t>;
  const scalar_t* g = grad.const_data_ptr<scalar_t>();
  const int64_t s0 = grad.stride(0), s1 = grad.stride(1), s2 = grad.stride(2);
  const int64_t nt = divup(C, kTile);
  at::parallel_for(0, B * nt * nt, std::max<int64_t>(1, kGrain / (kTile * kTile)), [&](int64_t begin, int64_t end) {
    acc_t t[kTile][kTile];
    acc_t col[kTile];
    for (int64_t idx = begin; idx < end; ++idx) {
      const int64_t b = idx / (nt * nt), I = (idx / nt) % nt, J = idx % nt;
      if (J < I) continue;
      const int64_t r0 = I * kTile, c0 = J * kTile;
      const int64_t nr = std::min(kTile, C - r0), nc = std::min(kTile, C - c0);
      const scalar_t* gb = g + b * s0;
      for (int64_t i = 0; i < nr; ++i) {
        for (int64_t j = 0; j < nc; ++j) {
          const int64_t r = r0 + i, c = c0 + j;
          t[i][j] = static_cast<acc_t>(gb[r * s1 + c * s2]) + static_cast<acc_t>(gb[c * s1 + r * s2]);
        }
      }
      const int64_t off = b * C * C;
      for (int64_t i = 0; i < nr; ++i) {
        if (sx) scale_store(sx + off + (r0 + i) * C + c0, t[i], inv, nc);
        if (sy) scale_store(sy + off + (r0 + i) * C + c0, t[i], -inv, nc);
      }
      if (I == J) continue;  // a diagonal tile is symmetric: its rows were all of it
      for (int64_t j = 0; j < nc; ++j) {
        for (int64_t i = 0; i < nr; ++i) col[i] = t[i][j];
        if (sx) scale_store(sx + off + (c0 + j) * C + r0, col, inv, nr);
        if (sy) scale_store(sy + off + (c0 + j) * C + r0, col, -inv, nr);
      }
    }
  });
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
    gram_upper(D, Fx, Fy, d);
    scale_mirror<scalar_t>(D.const_data_ptr<acc_t>(), out.mutable_data_ptr<scalar_t>(),
                           static_cast<acc_t>(1.0 / d.norm), d.B, d.C);
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
    at::Tensor Sx = need_x ? at::empty({d.B, d.C, d.C}, acc_opts) : at::Tensor();
    at::Tensor Sy = need_y ? at::empty({d.B, d.C, d.C}, acc_opts) : at::Tensor();
    symmetrize<scalar_t>(grad, inv, need_x ? Sx.mutable_data_ptr<acc_t>() : nullptr,
                         need_y ? Sy.mutable_data_ptr<acc_t>() : nullptr, d.B, d.C);
    const at::Tensor Fx = need_x ? as_matrices(fx, d, acc) : at::Tensor();
    const at::Tensor Fy = need_y ? as_matrices(*fy, d, acc) : at::Tensor();
    at::Tensor Gx = need_x ? gx.view({d.B, d.C, d.K}) : at::Tensor();
    at::Tensor Gy = need_y ? gy.view({d.B, d.C, d.K}) : at::Tensor();
    // Items: (side, sample, chunk of K columns). Chunks of about kChunkK columns (a float32
    // [C, chunk] block stays in cache for the bf16/half rounding), and, when the op is worth
    // threading, enough of them (down to 64 columns) to give every thread a few items.
    const int64_t sides = (need_x ? 1 : 0) + (need_y ? 1 : 0);
    if (2.0 * sides * d.B * d.C * d.C * d.K < kSmallFlops) {  // small: one batched call per side
      for (int side = 0; side < 2; ++side) {
        const bool is_x = side == 0;
        if (!(is_x ? need_x : need_y)) continue;
        const at::Tensor& S = is_x ? Sx : Sy;
        const at::Tensor& F = is_x ? Fx : Fy;
        at::Tensor& G = is_x ? Gx : Gy;
        if constexpr (reduced) {
          at::Tensor tmp = at::empty({d.B, d.C, d.K}, acc_opts);
          at::cpu::bmm_out(tmp, S, F);
          scale_store(G.mutable_data_ptr<scalar_t>(), tmp.const_data_ptr<acc_t>(), acc_t(1), tmp.numel());
        } else {
          at::cpu::bmm_out(G, S, F);
        }
      }
      return;
    }
    int64_t nk = divup(d.K, kChunkK);
    nk = std::max(nk, std::min(divup(4 * at::get_num_threads(), sides * d.B), divup(d.K, 64)));
    const int64_t kc = divup(d.K, nk);
    const int64_t nchunks = divup(d.K, kc);
    run_items(sides * d.B * nchunks, [&](int64_t item) {
      const int64_t side = item / (d.B * nchunks), b = (item / nchunks) % d.B, ch = item % nchunks;
      const bool is_x = need_x && side == 0;
      const at::Tensor& S = is_x ? Sx : Sy;
      const at::Tensor& F = is_x ? Fx : Fy;
      at::Tensor& G = is_x ? Gx : Gy;
      const int64_t k0 = ch * kc, n = std::min(kc, d.K - k0);
      const at::Tensor f = F.select(0, b).narrow(1, k0, n);
      if constexpr (reduced) {
        at::Tensor tmp = at::empty({d.C, n}, acc_opts);
        at::cpu::mm_out(tmp, S.select(0, b), f);
        const acc_t* tp = tmp.const_data_ptr<acc_t>();
        scalar_t* gp = G.mutable_data_ptr<scalar_t>() + b * d.C * d.K + k0;
        for (int64_t r = 0; r < d.C; ++r) scale_store(gp + r * d.K, tp + r * n, acc_t(1), n);
      } else {
        at::Tensor out = G.select(0, b).narrow(1, k0, n);
        at::cpu::mm_out(out, S.select(0, b), f);
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
