// feature_regularizer: sum_k w_k * R(|a_k - b_k|^p) over a list of layer pairs (R = mean or sum,
// p in {1, 2}), and its backward, which writes grad_a and grad_b = -grad_a in one pass.
//
// Work split: every layer is cut into chunks of kChunk elements (the last chunk of a layer may be
// shorter) and one at::parallel_for runs over the chunks of all layers together, so one huge layer
// and many small layers both spread over every thread with balanced work. The forward stores one
// float64 partial sum per chunk and adds them per layer in chunk order afterwards, so the result
// does not depend on the thread count (deterministic).
//
// Accuracy of the forward: inside a chunk, |d|^p is accumulated in opmath SIMD lanes (float32 for
// float/bf16/half, float64 for double) with kUnroll independent accumulators, and the lanes are
// flushed into a float64 total every kBlock elements, so no float32 lane ever adds more than
// kBlock / (kUnroll * lanes) terms (16 for float32 with AVX-512, 32 with AVX2 or the portable build).
// Chunks and layers are combined in float64.
// The result is rounded to the input dtype once.
#include "common.h"

#include <cmath>
#include <limits>
#include <string_view>
#include <vector>

namespace pygan::cpu {
namespace {

// Elements per work chunk (a multiple of every SIMD step and of kBlock).
constexpr int64_t kChunk = 32768;
// Elements between flushes of the float32 lane accumulators into float64.
constexpr int64_t kBlock = 1024;
// Independent accumulators / steps per loop iteration (hides the add latency).
constexpr int kUnroll = 4;

bool parse_reduction(std::string_view s) {
  if (s == "mean") return true;
  if (s == "sum") return false;
  TORCH_CHECK(false, "pygan::feature_regularizer: reduction must be 'mean' or 'sum', got '", s, "'");
}

void check_inputs(at::TensorList a, at::TensorList b, int64_t p, c10::ArrayRef<double> weights) {
  TORCH_CHECK(!a.empty(), "pygan::feature_regularizer: a must hold at least one layer");
  TORCH_CHECK(a.size() == b.size(), "pygan::feature_regularizer: a and b must hold the same number of layers, got ",
              a.size(), " and ", b.size());
  TORCH_CHECK(weights.size() == a.size(), "pygan::feature_regularizer: weights must have one entry per layer (",
              a.size(), "), got ", weights.size());
  TORCH_CHECK(p == 1 || p == 2, "pygan::feature_regularizer: p must be 1 or 2, got ", p);
  for (size_t k = 0; k < a.size(); ++k) {
    check_float_cpu(a[k], "a[k]");
    check_float_cpu(b[k], "b[k]");
    check_same(a[k], "a[k]", b[k], "b[k]");
    TORCH_CHECK(a[k].scalar_type() == a[0].scalar_type(),
                "pygan::feature_regularizer: every layer must have the same dtype, got ", a[0].scalar_type(),
                " and ", a[k].scalar_type(), " (layer ", k, ")");
  }
}

// Per-layer operands for a linear walk: the inputs themselves when they share a dense layout, else
// contiguous copies (the layout rule of common.h).
struct Prepared {
  std::vector<at::Tensor> a, b;
  std::vector<bool> keep;
};

Prepared prepare(at::TensorList a, at::TensorList b) {
  Prepared out;
  const size_t K = a.size();
  out.a.reserve(K);
  out.b.reserve(K);
  out.keep.reserve(K);
  for (size_t k = 0; k < K; ++k) {
    const bool keep = same_dense_layout({a[k], b[k]});
    out.keep.push_back(keep);
    out.a.push_back(dense_operand(a[k], keep));
    out.b.push_back(dense_operand(b[k], keep));
  }
  return out;
}

struct Chunk {
  int64_t layer, begin, end;
};

std::vector<Chunk> make_chunks(const std::vector<at::Tensor>& a, int64_t* total) {
  std::vector<Chunk> chunks;
  *total = 0;
  for (size_t k = 0; k < a.size(); ++k) {
    const int64_t n = a[k].numel();
    *total += n;
    for (int64_t i = 0; i < n; i += kChunk) chunks.push_back({static_cast<int64_t>(k), i, std::min(n, i + kChunk)});
  }
  return chunks;
}

// Runs body(chunk_begin, chunk_end) over the chunks: in parallel when the total work is above
// ATen's elementwise grain, inline otherwise (a thread hand-off costs more than a small layer).
template <typename F>
void for_chunks(size_t nchunks, int64_t total, const F& body) {
  if (nchunks == 0) return;
  if (total < kGrain || nchunks == 1) {
    body(0, static_cast<int64_t>(nchunks));
  } else {
    at::parallel_for(0, static_cast<int64_t>(nchunks), 1, body);
  }
}

template <int P, typename V>
inline V accumulate(const V& acc, const V& d) {
  if constexpr (P == 2) {
    return at::vec::fmadd(d, d, acc);
  } else {
    return acc + d.abs();
  }
}

template <typename V>
inline double hsum(const V& v) {
  using T = typename V::value_type;
  alignas(64) T lanes[V::size()];
  v.store(lanes);
  double s = 0;
  for (int64_t i = 0; i < V::size(); ++i) s += static_cast<double>(lanes[i]);
  return s;
}

// sum over [0, n) of |a - b|^P, accumulated as described at the top of the file.
template <typename scalar_t, int P>
double chunk_sum(const scalar_t* a, const scalar_t* b, int64_t n) {
  using IO = VecIO<scalar_t>;
  using fVec = typename IO::fVec;
  using acc_t = opmath_t<scalar_t>;
  constexpr int64_t S = IO::kStep;
  constexpr int kParts = IO::kParts;
  static_assert(kBlock % (S * kUnroll) == 0, "kBlock must be a multiple of the unrolled step");
  double total = 0;
  int64_t i = 0;
  const int64_t full = n - n % S;  // elements covered by whole SIMD steps
  while (i < full) {
    const int64_t block_end = std::min(full, i + kBlock);
    std::array<fVec, kUnroll * kParts> acc;
    acc.fill(fVec(acc_t(0)));
    for (; i + kUnroll * S <= block_end; i += kUnroll * S) {
      for (int u = 0; u < kUnroll; ++u) {
        const auto x = IO::load(a + i + u * S);
        const auto y = IO::load(b + i + u * S);
        for (int q = 0; q < kParts; ++q) acc[u * kParts + q] = accumulate<P>(acc[u * kParts + q], x[q] - y[q]);
      }
    }
    for (; i < block_end; i += S) {
      const auto x = IO::load(a + i);
      const auto y = IO::load(b + i);
      for (int q = 0; q < kParts; ++q) acc[q] = accumulate<P>(acc[q], x[q] - y[q]);
    }
    // Pairwise combination of the accumulators, then the lanes in float64.
    for (int w = kUnroll * kParts / 2; w >= 1; w /= 2) {
      for (int j = 0; j < w; ++j) acc[j] = acc[j] + acc[j + w];
    }
    total += hsum(acc[0]);
  }
  for (; i < n; ++i) {  // tail shorter than one SIMD step
    const acc_t d = static_cast<acc_t>(a[i]) - static_cast<acc_t>(b[i]);
    total += static_cast<double>(P == 2 ? d * d : std::abs(d));
  }
  return total;
}

at::Tensor feature_regularizer(at::TensorList a_in, at::TensorList b_in, int64_t p, c10::string_view reduction,
                               c10::ArrayRef<double> weights) {
  check_inputs(a_in, b_in, p, weights);
  const bool mean = parse_reduction(reduction);
  const Prepared ops = prepare(a_in, b_in);
  const size_t K = ops.a.size();
  int64_t total = 0;
  const std::vector<Chunk> chunks = make_chunks(ops.a, &total);
  std::vector<double> partial(chunks.size(), 0.0);

  PYGAN_DISPATCH_FLOATING(a_in[0].scalar_type(), "pygan::feature_regularizer", [&] {
    std::vector<const scalar_t*> ap(K), bp(K);
    for (size_t k = 0; k < K; ++k) {
      ap[k] = ops.a[k].const_data_ptr<scalar_t>();
      bp[k] = ops.b[k].const_data_ptr<scalar_t>();
    }
    for_chunks(chunks.size(), total, [&](int64_t begin, int64_t end) {
      for (int64_t c = begin; c < end; ++c) {
        const Chunk& ch = chunks[c];
        const scalar_t* x = ap[ch.layer] + ch.begin;
        const scalar_t* y = bp[ch.layer] + ch.begin;
        partial[c] = p == 2 ? chunk_sum<scalar_t, 2>(x, y, ch.end - ch.begin)
                            : chunk_sum<scalar_t, 1>(x, y, ch.end - ch.begin);
      }
    });
  });

  // Per layer in chunk order (deterministic), then weighted across layers, all in float64.
  std::vector<double> layer_sum(K, 0.0);
  for (size_t c = 0; c < chunks.size(); ++c) layer_sum[chunks[c].layer] += partial[c];
  double result = 0;
  for (size_t k = 0; k < K; ++k) {
    double r = layer_sum[k];
    if (mean) r /= static_cast<double>(ops.a[k].numel());  // 0 / 0 = NaN for an empty layer, as torch
    result += weights[k] * r;
  }
  return at::scalar_tensor(result, a_in[0].options());
}

// ga = c * phi'(a - b), gb = -ga over [0, n), either output may be null. phi' = 2d (P=2; `c` is
// then already doubled) or sign(d) with sign(0) = sign(NaN) = 0 (P=1, as torch's abs backward).
template <typename scalar_t, int P>
void chunk_grad(const scalar_t* a, const scalar_t* b, scalar_t* ga, scalar_t* gb, int64_t n, opmath_t<scalar_t> c) {
  using IO = VecIO<scalar_t>;
  using fVec = typename IO::fVec;
  using acc_t = opmath_t<scalar_t>;
  constexpr int64_t S = IO::kStep;
  const fVec cv(c), ncv(-c), zero(acc_t(0));
  auto grad = [&](const fVec& d) {
    if constexpr (P == 2) {
      return cv * d;
    } else {
      return fVec::blendv(fVec::blendv(zero, cv, d > zero), ncv, d < zero);
    }
  };
  auto step = [&](int64_t i, int64_t cnt) {
    const auto x = cnt == S ? IO::load(a + i) : IO::load(a + i, cnt);
    const auto y = cnt == S ? IO::load(b + i) : IO::load(b + i, cnt);
    typename IO::Pack g;
    for (int q = 0; q < IO::kParts; ++q) g[q] = grad(x[q] - y[q]);
    if (ga != nullptr) cnt == S ? IO::store(ga + i, g) : IO::store(ga + i, g, cnt);
    if (gb != nullptr) {
      for (int q = 0; q < IO::kParts; ++q) g[q] = zero - g[q];
      cnt == S ? IO::store(gb + i, g) : IO::store(gb + i, g, cnt);
    }
  };
  int64_t i = 0;
  for (; i + S <= n; i += S) step(i, S);
  if (i < n) step(i, n - i);
}

std::tuple<std::vector<at::Tensor>, std::vector<at::Tensor>> feature_regularizer_backward(
    const at::Tensor& grad, at::TensorList a_in, at::TensorList b_in, int64_t p, c10::string_view reduction,
    c10::ArrayRef<double> weights, bool need_a, bool need_b) {
  check_inputs(a_in, b_in, p, weights);
  check_float_cpu(grad, "grad");
  TORCH_CHECK(grad.dim() == 0, "pygan::feature_regularizer_backward: grad must be 0-dim, got shape ", grad.sizes());
  const bool mean = parse_reduction(reduction);
  std::vector<at::Tensor> grad_a, grad_b;
  if (!need_a && !need_b) return {grad_a, grad_b};
  const Prepared ops = prepare(a_in, b_in);
  const size_t K = ops.a.size();
  for (size_t k = 0; k < K; ++k) {
    if (need_a) grad_a.push_back(empty_like_layout(ops.a[k], ops.keep[k]));
    if (need_b) grad_b.push_back(empty_like_layout(ops.a[k], ops.keep[k]));
  }
  int64_t total = 0;
  const std::vector<Chunk> chunks = make_chunks(ops.a, &total);
  // Per-layer coefficient grad * w_k * s_k (times phi's factor 2 for p = 2), formed in float64 and
  // rounded to opmath once.
  const double g = grad.item<double>();
  std::vector<double> coef(K);
  for (size_t k = 0; k < K; ++k) {
    const int64_t n = ops.a[k].numel();
    const double s = (mean && n > 0) ? 1.0 / static_cast<double>(n) : 1.0;
    coef[k] = g * weights[k] * s * (p == 2 ? 2.0 : 1.0);
  }

  PYGAN_DISPATCH_FLOATING(a_in[0].scalar_type(), "pygan::feature_regularizer_backward", [&] {
    using acc_t = opmath_t<scalar_t>;
    std::vector<const scalar_t*> ap(K), bp(K);
    std::vector<scalar_t*> gap(K, nullptr), gbp(K, nullptr);
    std::vector<acc_t> cf(K);
    for (size_t k = 0; k < K; ++k) {
      ap[k] = ops.a[k].const_data_ptr<scalar_t>();
      bp[k] = ops.b[k].const_data_ptr<scalar_t>();
      if (need_a) gap[k] = grad_a[k].mutable_data_ptr<scalar_t>();
      if (need_b) gbp[k] = grad_b[k].mutable_data_ptr<scalar_t>();
      cf[k] = static_cast<acc_t>(coef[k]);
    }
    for_chunks(chunks.size(), total, [&](int64_t begin, int64_t end) {
      for (int64_t c = begin; c < end; ++c) {
        const Chunk& ch = chunks[c];
        const int64_t k = ch.layer, o = ch.begin, n = ch.end - ch.begin;
        scalar_t* ga = gap[k] ? gap[k] + o : nullptr;
        scalar_t* gb = gbp[k] ? gbp[k] + o : nullptr;
        if (p == 2) {
          chunk_grad<scalar_t, 2>(ap[k] + o, bp[k] + o, ga, gb, n, cf[k]);
        } else {
          chunk_grad<scalar_t, 1>(ap[k] + o, bp[k] + o, ga, gb, n, cf[k]);
        }
      }
    });
  });
  return {grad_a, grad_b};
}

}  // namespace

TORCH_LIBRARY_IMPL(pygan, CPU, m) {
  m.impl("feature_regularizer", &feature_regularizer);
  m.impl("feature_regularizer_backward", &feature_regularizer_backward);
}

}  // namespace pygan::cpu
