// feature_regularizer on CUDA: sum_k w_k R(|a_k - b_k|^p), R = mean (empty layer -> NaN) or sum, as a
// 0-dim tensor in a[0]'s dtype accumulated in float32 (float64 for float64); and its backward
// grad_a[k] = grad w_k s_k phi'(a_k - b_k) (s_k = 1/numel_k for the mean, else 1; phi' = 2d for p = 2,
// sign(d) with sign(0) = 0 for p = 1), grad_b = -grad_a; a list is empty when not needed; gradient
// strides follow the layout rule with a_k first. Contract as pygan/ops/feature_regularizer/.
//
// Forward: deterministic two-stage reduction, no float atomics: per layer one launch of a fixed
// number of blocks (grid-stride, 16-byte vectors when aligned), each writing its block sum scaled by
// w_k s_k into a float32 (float64) partials buffer; then one block sums all partials in a fixed
// order and writes the result. Backward: one elementwise launch per layer writing grad_a and/or
// grad_b; the incoming 0-dim gradient is read on the device (no host sync).
#define TORCH_ASSERT_ONLY_METHOD_OPERATORS
#include "common.cuh"

#include <cmath>
#include <limits>
#include <string_view>
#include <tuple>
#include <vector>

namespace pygan::cuda {
namespace {

template <int P, typename A>
__device__ __forceinline__ A phi(A d) {
  if constexpr (P == 2) {
    return d * d;
  } else {
    return d < A(0) ? -d : d;
  }
}

template <typename T, int P, bool VEC>
__global__ void __launch_bounds__(kThreads)
    partial_kernel(const T* __restrict__ a, const T* __restrict__ b, acc_t<T>* __restrict__ part, int64_t n,
                   double scale) {
  using A = acc_t<T>;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  const int64_t tid = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  A acc = 0;
  int64_t done = 0;
  if constexpr (VEC) {
    constexpr int N = Vec<T>::N;
    const int64_t nvec = n / N;
    for (int64_t i = tid; i < nvec; i += stride) {
      const Vec<T> va = load_vec(a + i * N);
      const Vec<T> vb = load_vec(b + i * N);
#pragma unroll
      for (int j = 0; j < N; ++j) acc += phi<P>(ld(va.v[j]) - ld(vb.v[j]));
    }
    done = nvec * N;
  }
  for (int64_t i = done + tid; i < n; i += stride) acc += phi<P>(ld(a[i]) - ld(b[i]));
  acc = block_sum(acc);
  if (threadIdx.x == 0) part[blockIdx.x] = acc * static_cast<A>(scale);
}

constexpr int kFinalThreads = 1024;

template <typename T>
__global__ void __launch_bounds__(kFinalThreads)
    final_kernel(const acc_t<T>* __restrict__ part, int64_t n, T* __restrict__ out) {
  acc_t<T> acc = 0;
  for (int64_t i = threadIdx.x; i < n; i += kFinalThreads) acc += part[i];
  acc = block_sum(acc);
  if (threadIdx.x == 0) *out = st<T>(acc);
}

template <typename T, int P, bool NEED_A, bool NEED_B, bool VEC>
__global__ void __launch_bounds__(kThreads)
    backward_kernel(const T* __restrict__ grad, const T* __restrict__ a, const T* __restrict__ b,
                    T* __restrict__ ga, T* __restrict__ gb, int64_t n, double coef) {
  using A = acc_t<T>;
  const A c = ld(*grad) * static_cast<A>(coef);
  auto dphi = [c](A d) -> A {
    if constexpr (P == 2) {
      return c * (d + d);
    } else {
      return d > A(0) ? c : (d < A(0) ? -c : d * A(0));  // sign(0) = 0; NaN stays NaN
    }
  };
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  const int64_t tid = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  int64_t done = 0;
  if constexpr (VEC) {
    constexpr int N = Vec<T>::N;
    const int64_t nvec = n / N;
    for (int64_t i = tid; i < nvec; i += stride) {
      const Vec<T> va = load_vec(a + i * N);
      const Vec<T> vb = load_vec(b + i * N);
      Vec<T> oa, ob;
#pragma unroll
      for (int j = 0; j < N; ++j) {
        const A g = dphi(ld(va.v[j]) - ld(vb.v[j]));
        oa.v[j] = st<T>(g);
        ob.v[j] = st<T>(-g);
      }
      if constexpr (NEED_A) store_vec(ga + i * N, oa);
      if constexpr (NEED_B) store_vec(gb + i * N, ob);
    }
    done = nvec * N;
  }
  for (int64_t i = done + tid; i < n; i += stride) {
    const A g = dphi(ld(a[i]) - ld(b[i]));
    if constexpr (NEED_A) ga[i] = st<T>(g);
    if constexpr (NEED_B) gb[i] = st<T>(-g);
  }
}

void check_args(at::TensorList a, at::TensorList b, int64_t p, std::string_view reduction,
                at::ArrayRef<double> weights) {
  TORCH_CHECK(!a.empty(), "pygan::feature_regularizer: a must hold at least one tensor");
  TORCH_CHECK(a.size() == b.size() && a.size() == weights.size(),
              "pygan::feature_regularizer: a, b and weights must have the same length, got ", a.size(), ", ",
              b.size(), ", ", weights.size());
  TORCH_CHECK(p == 1 || p == 2, "pygan::feature_regularizer: p must be 1 or 2, got ", p);
  TORCH_CHECK(reduction == "mean" || reduction == "sum",
              "pygan::feature_regularizer: reduction must be 'mean' or 'sum', got '", reduction, "'");
  for (size_t k = 0; k < a.size(); ++k) {
    check_float_cuda(a[k], "a[k]");
    check_same(a[k], "a[k]", b[k], "b[k]");
    TORCH_CHECK(a[k].scalar_type() == a[0].scalar_type() && a[k].device() == a[0].device(),
                "pygan::feature_regularizer: every layer must share a[0]'s dtype and device");
  }
}

// w_k s_k (NaN for the mean of an empty layer: 0/0, as PyTorch's mean).
double layer_scale(const at::Tensor& t, std::string_view reduction, double w) {
  if (reduction == "sum") return w;
  return t.numel() > 0 ? w / static_cast<double>(t.numel()) : std::numeric_limits<double>::quiet_NaN();
}

at::Tensor feature_regularizer(at::TensorList a, at::TensorList b, int64_t p, c10::string_view reduction_,
                               at::ArrayRef<double> weights) {
  const std::string_view reduction(reduction_.data(), reduction_.size());
  check_args(a, b, p, reduction, weights);
  const c10::cuda::CUDAGuard guard(a[0].device());
  const at::ScalarType dtype = a[0].scalar_type();
  const at::ScalarType acc_type = dtype == at::kDouble ? at::kDouble : at::kFloat;
  std::vector<at::Tensor> xs, ys;
  std::vector<unsigned> blocks;
  int64_t total = 0;
  for (size_t k = 0; k < a.size(); ++k) {
    const bool keep = same_dense_layout({a[k], b[k]});
    xs.push_back(dense_operand(a[k], keep));
    ys.push_back(dense_operand(b[k], keep));
    const int64_t n = xs.back().numel();
    // One 16-byte vector per thread per pass; at least one block (it writes the empty layer's partial).
    blocks.push_back(grid_1d(std::max<int64_t>(1, n / 4), kThreads, 2));
    total += blocks.back();
  }
  at::Tensor part = at::empty({total}, a[0].options().dtype(acc_type));
  at::Tensor out = at::empty({}, a[0].options());
  PYGAN_DISPATCH_FLOATING(dtype, "pygan::feature_regularizer_cuda", [&] {
    using A = acc_t<scalar_t>;
    A* pp = part.mutable_data_ptr<A>();
    int64_t offset = 0;
    for (size_t k = 0; k < xs.size(); ++k) {
      const scalar_t* xp = xs[k].const_data_ptr<scalar_t>();
      const scalar_t* yp = ys[k].const_data_ptr<scalar_t>();
      const int64_t n = xs[k].numel();
      const double scale = layer_scale(xs[k], reduction, weights[k]);
      const bool vec = aligned16(xp) && aligned16(yp);
      auto go = [&](auto p_c, auto vec_c) {
        partial_kernel<scalar_t, decltype(p_c)::value, decltype(vec_c)::value>
            <<<blocks[k], kThreads, 0, stream()>>>(xp, yp, pp + offset, n, scale);
        C10_CUDA_KERNEL_LAUNCH_CHECK();
      };
      if (p == 2) {
        vec ? go(std::integral_constant<int, 2>{}, std::true_type{})
            : go(std::integral_constant<int, 2>{}, std::false_type{});
      } else {
        vec ? go(std::integral_constant<int, 1>{}, std::true_type{})
            : go(std::integral_constant<int, 1>{}, std::false_type{});
      }
      offset += blocks[k];
    }
    final_kernel<scalar_t><<<1, kFinalThreads, 0, stream()>>>(pp, total, out.mutable_data_ptr<scalar_t>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return out;
}

std::tuple<std::vector<at::Tensor>, std::vector<at::Tensor>> feature_regularizer_backward(
    const at::Tensor& grad, at::TensorList a, at::TensorList b, int64_t p, c10::string_view reduction_,
    at::ArrayRef<double> weights, bool need_a, bool need_b) {
  const std::string_view reduction(reduction_.data(), reduction_.size());
  check_args(a, b, p, reduction, weights);
  TORCH_CHECK(grad.numel() == 1 && grad.device() == a[0].device(),
              "pygan::feature_regularizer_backward: grad must be a one-element tensor on ", a[0].device());
  const c10::cuda::CUDAGuard guard(a[0].device());
  const at::ScalarType dtype = a[0].scalar_type();
  const at::Tensor g = grad.to(dtype).reshape({});
  std::vector<at::Tensor> grad_a, grad_b;
  for (size_t k = 0; k < a.size(); ++k) {
    const bool keep = same_dense_layout({a[k], b[k]});
    const at::Tensor x = dense_operand(a[k], keep);
    const at::Tensor y = dense_operand(b[k], keep);
    at::Tensor ga = need_a ? empty_like_layout(x, keep) : at::Tensor();
    at::Tensor gb = need_b ? empty_like_layout(x, keep) : at::Tensor();
    const int64_t n = x.numel();
    if (n > 0 && (need_a || need_b)) {
      const double coef = layer_scale(x, reduction, weights[k]);
      PYGAN_DISPATCH_FLOATING(dtype, "pygan::feature_regularizer_backward_cuda", [&] {
        const scalar_t* gp = g.const_data_ptr<scalar_t>();
        const scalar_t* xp = x.const_data_ptr<scalar_t>();
        const scalar_t* yp = y.const_data_ptr<scalar_t>();
        scalar_t* gap = need_a ? ga.mutable_data_ptr<scalar_t>() : nullptr;
        scalar_t* gbp = need_b ? gb.mutable_data_ptr<scalar_t>() : nullptr;
        const bool vec = aligned16(xp) && aligned16(yp) && aligned16(gap) && aligned16(gbp);
        constexpr int N = Vec<scalar_t>::N;
        const unsigned grid = grid_1d(vec ? (n + N - 1) / N : n, kThreads);
        auto go = [&](auto p_c, auto na_c, auto nb_c, auto vec_c) {
          backward_kernel<scalar_t, decltype(p_c)::value, decltype(na_c)::value, decltype(nb_c)::value,
                          decltype(vec_c)::value><<<grid, kThreads, 0, stream()>>>(gp, xp, yp, gap, gbp, n, coef);
          C10_CUDA_KERNEL_LAUNCH_CHECK();
        };
        auto with_p = [&](auto na_c, auto nb_c) {
          if (p == 2) {
            vec ? go(std::integral_constant<int, 2>{}, na_c, nb_c, std::true_type{})
                : go(std::integral_constant<int, 2>{}, na_c, nb_c, std::false_type{});
          } else {
            vec ? go(std::integral_constant<int, 1>{}, na_c, nb_c, std::true_type{})
                : go(std::integral_constant<int, 1>{}, na_c, nb_c, std::false_type{});
          }
        };
        if (need_a && need_b) {
          with_p(std::true_type{}, std::true_type{});
        } else if (need_a) {
          with_p(std::true_type{}, std::false_type{});
        } else {
          with_p(std::false_type{}, std::true_type{});
        }
      });
    }
    if (need_a) grad_a.push_back(ga);
    if (need_b) grad_b.push_back(gb);
  }
  return {grad_a, grad_b};
}

}  // namespace

TORCH_LIBRARY_IMPL(pygan, CUDA, m) {
  m.impl("feature_regularizer", &feature_regularizer);
  m.impl("feature_regularizer_backward", &feature_regularizer_backward);
}

}  // namespace pygan::cuda
