// gradient_penalty's fused pieces (pygan/ops/gradient_penalty/):
//
//   interpolate(real, fake, alpha[B])     out = real + alpha_b * (fake - real), one pass (lerp form)
//   interpolate_backward(grad, alpha)     (1 - alpha_b) * grad and alpha_b * grad, one pass writing both
//   grad_norm_penalty(grads)              n_b = ||grads_b||_2, penalty = weight * mean_b h(n_b - target)^2
//   grad_norm_penalty_backward(...)       c_b * grads_b, one pass
//
// Rows: dim 0 is the batch B, D = numel / B elements per sample. Operands whose layout is dense
// (contiguous, channels_last, channels_last_3d: same_dense_layout in common.h) keep it — the batch is
// the outermost dimension of each of those layouts, so row b is storage [b*D, (b+1)*D) — others are
// made contiguous. Every kernel parallelises over the flat element range (or over fixed blocks of
// it), so a single huge row and many small rows both keep every core busy.
#include "common.h"

#include <cfloat>
#include <cmath>
#include <limits>
#include <vector>

namespace pygan::cpu {
namespace {

// Elements per float32 partial sum of squares. Within a block the squares accumulate in float32
// SIMD lanes (float64 for float64 input); block sums are added in float64. Bounding the block keeps
// the float32 rounding error independent of the row length, and fixed blocks (not the thread
// chunks) make the result independent of the number of threads.
constexpr int64_t kNormBlock = 4096;

// Elements per sample (the product of sizes[1:]; 1 for rank-1 tensors).
int64_t row_size(const at::Tensor& t) {
  int64_t d = 1;
  for (int64_t i = 1; i < t.dim(); ++i) d *= t.size(i);
  return d;
}

// Calls fn(b, begin, end) for each piece [begin, end) of row b within the flat range of n elements
// (rows of D > 0 elements), in parallel chunks of the flat range.
template <typename F>
void for_row_segments(int64_t n, int64_t D, const F& fn) {
  at::parallel_for(0, n, kGrain, [&](int64_t begin, int64_t end) {
    int64_t b = begin / D;
    for (int64_t i = begin; i < end; ++b) {
      const int64_t e = std::min(end, (b + 1) * D);
      fn(b, i, e);
      i = e;
    }
  });
}

// out[i] = scale * in[i] on [s, e), in opmath: SIMD when the piece holds at least one vector step.
template <typename T>
inline void scale_piece(T* out, const T* in, int64_t s, int64_t e, opmath_t<T> scale) {
  using IO = VecIO<T>;
  using fVec = typename IO::fVec;
  if (e - s >= IO::kStep) {
    const fVec c(scale);
    vec_map(s, e, [&](const fVec& x) { return x * c; }, out, in);
  } else {
    for (int64_t i = s; i < e; ++i) out[i] = static_cast<T>(static_cast<opmath_t<T>>(in[i]) * scale);
  }
}

// ---- interpolate ----------------------------------------------------------------------------

at::Tensor interpolate(const at::Tensor& real, const at::Tensor& fake, const at::Tensor& alpha) {
  check_float_cpu(real, "real");
  check_float_cpu(fake, "fake");
  check_float_cpu(alpha, "alpha");
  check_same(real, "real", fake, "fake");
  TORCH_CHECK(real.dim() >= 1, "pygan::interpolate: real must have a batch dimension, got a 0-dim tensor");
  const int64_t B = real.size(0);
  TORCH_CHECK(alpha.dim() == 1 && alpha.size(0) == B, "pygan::interpolate: alpha must have shape [", B,
              "], got ", alpha.sizes());
  TORCH_CHECK(alpha.scalar_type() == real.scalar_type(), "pygan::interpolate: alpha must have dtype ",
              real.scalar_type(), ", got ", alpha.scalar_type());
  const bool keep = same_dense_layout({real, fake});
  const at::Tensor r = dense_operand(real, keep);
  const at::Tensor f = dense_operand(fake, keep);
  at::Tensor out = empty_like_layout(r, keep);
  const int64_t n = out.numel();
  if (n == 0) return out;
  const int64_t D = n / B;
  const at::Tensor a = alpha.contiguous();
  PYGAN_DISPATCH_FLOATING(out.scalar_type(), "pygan::interpolate", [&] {
    using acc_t = opmath_t<scalar_t>;
    using fVec = typename VecIO<scalar_t>::fVec;
    const scalar_t* rp = r.const_data_ptr<scalar_t>();
    const scalar_t* fp = f.const_data_ptr<scalar_t>();
    const scalar_t* ap = a.const_data_ptr<scalar_t>();
    scalar_t* op = out.mutable_data_ptr<scalar_t>();
    // torch.lerp's two-sided form: real + w (fake - real) for w < 0.5, fake - (1 - w)(fake - real)
    // otherwise, so that w = 0 and w = 1 give real and fake exactly.
    if (D == 1) {  // one element per sample: alpha is itself an elementwise operand
      const fVec half(0.5), one(1);
      at::parallel_for(0, n, kGrain, [&](int64_t begin, int64_t end) {
        vec_map(
            begin, end,
            [&](const fVec& x, const fVec& y, const fVec& w) {
              const auto lo = w < half;
              return at::vec::fmadd(fVec::blendv(w - one, w, lo), y - x, fVec::blendv(y, x, lo));
            },
            op, rp, fp, ap);
      });
      return;
    }
    for_row_segments(n, D, [&](int64_t b, int64_t s, int64_t e) {
      const acc_t w = static_cast<acc_t>(ap[b]);
      const bool lo = w < acc_t(0.5);
      const acc_t c = lo ? w : w - acc_t(1);
      if (e - s >= VecIO<scalar_t>::kStep) {
        const fVec cv(c);
        if (lo) {
          vec_map(s, e, [&](const fVec& x, const fVec& y) { return at::vec::fmadd(cv, y - x, x); }, op, rp, fp);
        } else {
          vec_map(s, e, [&](const fVec& x, const fVec& y) { return at::vec::fmadd(cv, y - x, y); }, op, rp, fp);
        }
      } else {
        for (int64_t i = s; i < e; ++i) {
          const acc_t x = static_cast<acc_t>(rp[i]), y = static_cast<acc_t>(fp[i]);
          op[i] = static_cast<scalar_t>(std::fma(c, y - x, lo ? x : y));
        }
      }
    });
  });
  return out;
}

// (grad_real, grad_fake) = ((1 - alpha_b) * grad, alpha_b * grad), both written in one pass; an
// output that is not needed is an empty [0] tensor.
std::tuple<at::Tensor, at::Tensor> interpolate_backward(const at::Tensor& grad, const at::Tensor& alpha,
                                                        bool need_real, bool need_fake) {
  check_float_cpu(grad, "grad");
  check_float_cpu(alpha, "alpha");
  TORCH_CHECK(grad.dim() >= 1, "pygan::interpolate_backward: grad must have a batch dimension");
  const int64_t B = grad.size(0);
  TORCH_CHECK(alpha.dim() == 1 && alpha.size(0) == B, "pygan::interpolate_backward: alpha must have shape [",
              B, "], got ", alpha.sizes());
  TORCH_CHECK(alpha.scalar_type() == grad.scalar_type(), "pygan::interpolate_backward: alpha must have dtype ",
              grad.scalar_type(), ", got ", alpha.scalar_type());
  const bool keep = same_dense_layout({grad});
  const at::Tensor g = dense_operand(grad, keep);
  at::Tensor gr = need_real ? empty_like_layout(g, keep) : at::empty({0}, g.options());
  at::Tensor gf = need_fake ? empty_like_layout(g, keep) : at::empty({0}, g.options());
  const int64_t n = g.numel();
  if (n == 0 || !(need_real || need_fake)) return {gr, gf};
  const int64_t D = n / B;
  const at::Tensor a = alpha.contiguous();
  PYGAN_DISPATCH_FLOATING(g.scalar_type(), "pygan::interpolate_backward", [&] {
    using acc_t = opmath_t<scalar_t>;
    using IO = VecIO<scalar_t>;
    using fVec = typename IO::fVec;
    constexpr int64_t S = IO::kStep;
    const scalar_t* gp = g.const_data_ptr<scalar_t>();
    const scalar_t* ap = a.const_data_ptr<scalar_t>();
    scalar_t* rp = need_real ? gr.mutable_data_ptr<scalar_t>() : nullptr;
    scalar_t* fp = need_fake ? gf.mutable_data_ptr<scalar_t>() : nullptr;
    // Writes rows [s, e) of the needed outputs; w(i) gives alpha for element i as an opmath vector
    // (w_scalar for the scalar tail).
    const auto piece = [&](int64_t s, int64_t e, const auto& wvec, const auto& wscalar) {
      int64_t i = s;
      const fVec one(1);
      for (; i + S <= e; i += S) {
        const auto x = IO::load(gp + i);
        typename IO::Pack pr, pf;
        for (int p = 0; p < IO::kParts; ++p) {
          const fVec w = wvec(i, p);
          pf[p] = x[p] * w;
          pr[p] = x[p] * (one - w);
        }
        if (rp) IO::store(rp + i, pr);
        if (fp) IO::store(fp + i, pf);
      }
      for (; i < e; ++i) {
        const acc_t x = static_cast<acc_t>(gp[i]);
        const acc_t w = wscalar(i);
        if (rp) rp[i] = static_cast<scalar_t>(x * (acc_t(1) - w));
        if (fp) fp[i] = static_cast<scalar_t>(x * w);
      }
    };
    if (D == 1) {
      at::parallel_for(0, n, kGrain, [&](int64_t begin, int64_t end) {
        piece(
            begin, end, [&](int64_t i, int p) { return IO::load(ap + i)[p]; },
            [&](int64_t i) { return static_cast<acc_t>(ap[i]); });
      });
      return;
    }
    for_row_segments(n, D, [&](int64_t b, int64_t s, int64_t e) {
      const acc_t w = static_cast<acc_t>(ap[b]);
      const fVec wv(w);
      piece(s, e, [&](int64_t, int) { return wv; }, [&](int64_t) { return w; });
    });
  });
  return {gr, gf};
}

// ---- grad_norm_penalty ----------------------------------------------------------------------

// Sum of squares of p[0, n) (n <= kNormBlock): opmath SIMD lanes (four independent accumulators),
// a scalar tail, the lanes added in float64.
template <typename T>
double block_sumsq(const T* p, int64_t n) {
  using IO = VecIO<T>;
  using fVec = typename IO::fVec;
  using acc_t = opmath_t<T>;
  constexpr int64_t S = IO::kStep;
  constexpr int kSteps = 4 / IO::kParts;  // vector steps per iteration: 4 accumulators in all
  std::array<fVec, 4> acc{fVec(0), fVec(0), fVec(0), fVec(0)};
  int64_t i = 0;
  for (; i + kSteps * S <= n; i += kSteps * S) {
    for (int u = 0; u < kSteps; ++u) {
      const auto x = IO::load(p + i + u * S);
      for (int q = 0; q < IO::kParts; ++q) {
        fVec& a = acc[u * IO::kParts + q];
        a = at::vec::fmadd(x[q], x[q], a);
      }
    }
  }
  for (; i + S <= n; i += S) {
    const auto x = IO::load(p + i);
    for (int q = 0; q < IO::kParts; ++q) acc[q] = at::vec::fmadd(x[q], x[q], acc[q]);
  }
  acc_t tail = 0;
  for (; i < n; ++i) {
    const acc_t x = static_cast<acc_t>(p[i]);
    tail += x * x;
  }
  const fVec v = (acc[0] + acc[1]) + (acc[2] + acc[3]);
  std::array<acc_t, fVec::size()> lanes;
  v.store(lanes.data());
  double sum = static_cast<double>(tail);
  for (const acc_t l : lanes) sum += static_cast<double>(l);
  return sum;
}

inline double hinge(double gap, bool one_sided) { return (one_sided && gap < 0) ? 0.0 : gap; }

// (penalty: 0-dim, grads' dtype; norms: [B], float32 — float64 for float64 grads).
std::tuple<at::Tensor, at::Tensor> grad_norm_penalty(const at::Tensor& grads, double target, double weight,
                                                     bool one_sided) {
  check_float_cpu(grads, "grads");
  TORCH_CHECK(grads.dim() >= 1, "pygan::grad_norm_penalty: grads must have a batch dimension");
  const int64_t B = grads.size(0);
  const int64_t D = row_size(grads);
  const bool keep = same_dense_layout({grads});
  const at::Tensor g = dense_operand(grads, keep);
  const auto norm_dtype = grads.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
  at::Tensor norms = at::empty({B}, grads.options().dtype(norm_dtype));
  at::Tensor penalty = at::empty({}, grads.options());
  std::vector<double> nrm(static_cast<size_t>(B), 0.0);
  if (B > 0 && D > 0) {
    PYGAN_DISPATCH_FLOATING(g.scalar_type(), "pygan::grad_norm_penalty", [&] {
      const scalar_t* gp = g.const_data_ptr<scalar_t>();
      if (D == 1) {  // one element per sample: the norm is |g| (no squaring, so no underflow)
        at::parallel_for(0, B, kGrain, [&](int64_t begin, int64_t end) {
          for (int64_t b = begin; b < end; ++b) nrm[b] = std::abs(static_cast<double>(gp[b]));
        });
        return;
      }
      const int64_t nb = (D + kNormBlock - 1) / kNormBlock;  // blocks per row
      std::vector<double> partial(static_cast<size_t>(B * nb));
      const int64_t grain = std::max<int64_t>(1, kGrain / std::min(D, kNormBlock));
      at::parallel_for(0, B * nb, grain, [&](int64_t begin, int64_t end) {
        for (int64_t t = begin; t < end; ++t) {
          const int64_t b = t / nb, j = t % nb;
          const int64_t s = j * kNormBlock;
          partial[t] = block_sumsq(gp + b * D + s, std::min(kNormBlock, D - s));
        }
      });
      for (int64_t b = 0; b < B; ++b) {
        double acc = 0;
        for (int64_t j = 0; j < nb; ++j) acc += partial[b * nb + j];
        nrm[b] = std::sqrt(acc);
      }
    });
  }
  // The penalty from the unrounded norms, in float64; B = 0 gives NaN like torch's mean of nothing.
  double sum = 0;
  for (int64_t b = 0; b < B; ++b) {
    const double h = hinge(nrm[b] - target, one_sided);
    sum += h * h;
  }
  const double pen = B > 0 ? weight * (sum / static_cast<double>(B)) : std::numeric_limits<double>::quiet_NaN();
  penalty.fill_(pen);
  if (norm_dtype == at::kDouble) {
    std::copy(nrm.begin(), nrm.end(), norms.mutable_data_ptr<double>());
  } else {
    float* np = norms.mutable_data_ptr<float>();
    for (int64_t b = 0; b < B; ++b) np[b] = static_cast<float>(nrm[b]);
  }
  return {penalty, norms};
}

// c_b * grads_b with c_b = grad_penalty * 2 * weight * h(n_b - target) / (B * n_b) + grad_norms_b / n_b
// (0 where n_b == 0). c_b is formed in float64; where it does not fit the opmath type (a tiny
// nonzero norm, e.g. a denormal single-element row) the row is written as k_b * (g / n_b) instead,
// k_b = c_b * n_b, which stays finite because |g| <= n_b.
at::Tensor grad_norm_penalty_backward(const at::Tensor& grad_penalty, const at::Tensor& grad_norms,
                                      const at::Tensor& grads, const at::Tensor& norms, double target,
                                      double weight, bool one_sided) {
  check_float_cpu(grads, "grads");
  check_float_cpu(grad_penalty, "grad_penalty");
  check_float_cpu(grad_norms, "grad_norms");
  check_float_cpu(norms, "norms");
  TORCH_CHECK(grads.dim() >= 1, "pygan::grad_norm_penalty_backward: grads must have a batch dimension");
  const int64_t B = grads.size(0);
  TORCH_CHECK(grad_penalty.numel() == 1, "pygan::grad_norm_penalty_backward: grad_penalty must hold one value");
  TORCH_CHECK(norms.dim() == 1 && norms.size(0) == B && grad_norms.dim() == 1 && grad_norms.size(0) == B,
              "pygan::grad_norm_penalty_backward: norms and grad_norms must have shape [", B, "], got ",
              norms.sizes(), " and ", grad_norms.sizes());
  const bool keep = same_dense_layout({grads});
  const at::Tensor g = dense_operand(grads, keep);
  at::Tensor out = empty_like_layout(g, keep);
  const int64_t n = out.numel();
  if (n == 0) return out;
  const int64_t D = n / B;
  const double gp = grad_penalty.item<double>();
  const at::Tensor gn64 = grad_norms.to(at::kDouble).contiguous();
  const at::Tensor n64 = norms.to(at::kDouble).contiguous();
  const double* gnp = gn64.const_data_ptr<double>();
  const double* np = n64.const_data_ptr<double>();
  PYGAN_DISPATCH_FLOATING(g.scalar_type(), "pygan::grad_norm_penalty_backward", [&] {
    using acc_t = opmath_t<scalar_t>;
    using fVec = typename VecIO<scalar_t>::fVec;
    // Per row: the scale (or, for the rare divide path, k_b and n_b).
    std::vector<acc_t> scale(B), knum(B), nval(B);
    std::vector<char> divide(B, 0);
    const double f = gp * 2.0 * weight / static_cast<double>(B);
    for (int64_t b = 0; b < B; ++b) {
      const double nb = np[b];
      if (nb == 0) {
        scale[b] = 0;
        continue;
      }
      const double k = f * hinge(nb - target, one_sided) + gnp[b];
      const double c = k / nb;
      if (std::abs(c) > static_cast<double>(std::numeric_limits<acc_t>::max())) {
        divide[b] = 1;
        knum[b] = static_cast<acc_t>(k);
        nval[b] = static_cast<acc_t>(nb);
      } else {
        scale[b] = static_cast<acc_t>(c);
      }
    }
    const scalar_t* gp_ = g.const_data_ptr<scalar_t>();
    scalar_t* op = out.mutable_data_ptr<scalar_t>();
    const auto row_piece = [&](int64_t b, int64_t s, int64_t e) {
      if (!divide[b]) {
        scale_piece(op, gp_, s, e, scale[b]);
        return;
      }
      const acc_t k = knum[b], nb = nval[b];
      if (e - s >= VecIO<scalar_t>::kStep) {
        const fVec kv(k), nv(nb);
        vec_map(s, e, [&](const fVec& x) { return (x / nv) * kv; }, op, gp_);
      } else {
        for (int64_t i = s; i < e; ++i) op[i] = static_cast<scalar_t>((static_cast<acc_t>(gp_[i]) / nb) * k);
      }
    };
    if (D == 1) {
      at::parallel_for(0, n, kGrain, [&](int64_t begin, int64_t end) {
        for (int64_t i = begin; i < end; ++i) row_piece(i, i, i + 1);
      });
      return;
    }
    for_row_segments(n, D, row_piece);
  });
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(pygan, CPU, m) {
  m.impl("interpolate", &interpolate);
  m.impl("interpolate_backward", &interpolate_backward);
  m.impl("grad_norm_penalty", &grad_norm_penalty);
  m.impl("grad_norm_penalty_backward", &grad_norm_penalty_backward);
}

}  // namespace pygan::cpu
