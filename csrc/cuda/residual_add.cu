// residual_add on CUDA: out = act(base + residual), act in {none, tanh, clamp (hardtanh to [-1, 1])},
// and its backward grad * act'(out) from the saved output. Same contract as csrc/cpu/residual_add.cpp.
// One read of each input and one write; 16-byte vectors when every pointer is 16-byte aligned (the
// tail of n % N elements then goes scalar); float32 math (float64 for float64).
#define TORCH_ASSERT_ONLY_METHOD_OPERATORS
#include "common.cuh"

#include <string_view>

namespace pygan::cuda {
namespace {

enum Act : int { kNone = 0, kTanh = 1, kClamp = 2 };

Act parse_act(std::string_view s) {
  if (s == "none") return kNone;
  if (s == "tanh") return kTanh;
  if (s == "clamp") return kClamp;
  TORCH_CHECK(false, "pygan::residual_add: activation must be 'none', 'tanh' or 'clamp', got '", s, "'");
}

template <int ACT, typename A>
__device__ __forceinline__ A activate(A x) {
  if constexpr (ACT == kTanh) {
    return tanh(x);  // CUDA's tanhf / tanh: correctly rounded to within ~2 ulp
  } else if constexpr (ACT == kClamp) {
    // Comparisons rather than fminf/fmaxf: NaN compares false and propagates.
    return x < A(-1) ? A(-1) : (x > A(1) ? A(1) : x);
  } else {
    return x;
  }
}

template <int ACT, typename A>
__device__ __forceinline__ A activate_grad(A g, A y) {
  if constexpr (ACT == kTanh) {
    return g * (A(1) - y * y);
  } else if constexpr (ACT == kClamp) {
    return (y <= A(-1) || y >= A(1)) ? A(0) : g;  // NaN output passes the gradient, as hardtanh
  } else {
    return g;
  }
}

// FWD: out = act(x + y); BWD: out = act'(y) * x (x = grad, y = saved output).
template <typename T, int ACT, bool BWD, bool VEC>
__global__ void __launch_bounds__(kThreads) residual_kernel(const T* __restrict__ x, const T* __restrict__ y,
                                                            T* __restrict__ out, int64_t n) {
  using A = acc_t<T>;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  const int64_t tid = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  auto f = [](A a, A b) -> A {
    if constexpr (BWD) {
      return activate_grad<ACT>(a, b);
    } else {
      return activate<ACT>(a + b);
    }
  };
  int64_t done = 0;
  if constexpr (VEC) {
    constexpr int N = Vec<T>::N;
    const int64_t nvec = n / N;
    for (int64_t i = tid; i < nvec; i += stride) {
      const Vec<T> a = load_vec(x + i * N);
      const Vec<T> b = load_vec(y + i * N);
      Vec<T> o;
#pragma unroll
      for (int j = 0; j < N; ++j) o.v[j] = st<T>(f(ld(a.v[j]), ld(b.v[j])));
      store_vec(out + i * N, o);
    }
    done = nvec * N;
  }
  for (int64_t i = done + tid; i < n; i += stride) out[i] = st<T>(f(ld(x[i]), ld(y[i])));
}

template <bool BWD>
void launch(const at::Tensor& x, const at::Tensor& y, at::Tensor& out, Act act) {
  const int64_t n = out.numel();
  if (n == 0) return;
  PYGAN_DISPATCH_FLOATING(out.scalar_type(), "pygan::residual_add_cuda", [&] {
    const scalar_t* xp = x.const_data_ptr<scalar_t>();
    const scalar_t* yp = y.const_data_ptr<scalar_t>();
    scalar_t* op = out.mutable_data_ptr<scalar_t>();
    const bool vec = aligned16(xp) && aligned16(yp) && aligned16(op);
    constexpr int N = Vec<scalar_t>::N;
    const unsigned grid = grid_1d(vec ? (n + N - 1) / N : n, kThreads);
    auto go = [&](auto act_c, auto vec_c) {
      residual_kernel<scalar_t, decltype(act_c)::value, BWD, decltype(vec_c)::value>
          <<<grid, kThreads, 0, stream()>>>(xp, yp, op, n);
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    };
    auto with_vec = [&](auto act_c) {
      if (vec) {
        go(act_c, std::true_type{});
      } else {
        go(act_c, std::false_type{});
      }
    };
    switch (act) {
      case kNone:
        with_vec(std::integral_constant<int, kNone>{});
        break;
      case kTanh:
        with_vec(std::integral_constant<int, kTanh>{});
        break;
      case kClamp:
        with_vec(std::integral_constant<int, kClamp>{});
        break;
    }
  });
}

at::Tensor residual_add(const at::Tensor& base, const at::Tensor& residual, c10::string_view activation,
                        bool /*detach_base: autograd only*/) {
  check_float_cuda(base, "base");
  check_float_cuda(residual, "residual");
  check_same(base, "base", residual, "residual");
  const Act act = parse_act(std::string_view(activation.data(), activation.size()));
  const c10::cuda::CUDAGuard guard(base.device());
  const bool keep = same_dense_layout({base, residual});
  const at::Tensor b = dense_operand(base, keep);
  const at::Tensor r = dense_operand(residual, keep);
  at::Tensor out = empty_like_layout(b, keep);
  launch<false>(b, r, out, act);
  return out;
}

at::Tensor residual_add_backward(const at::Tensor& grad, const at::Tensor& out, c10::string_view activation) {
  check_float_cuda(grad, "grad");
  check_float_cuda(out, "out");
  check_same(grad, "grad", out, "out");
  const Act act = parse_act(std::string_view(activation.data(), activation.size()));
  const c10::cuda::CUDAGuard guard(out.device());
  const bool keep = same_dense_layout({out, grad});
  const at::Tensor g = dense_operand(grad, keep);
  const at::Tensor o = dense_operand(out, keep);
  at::Tensor gi = empty_like_layout(o, keep);
  launch<true>(g, o, gi, act);
  return gi;
}

}  // namespace

TORCH_LIBRARY_IMPL(pygan, CUDA, m) {
  m.impl("residual_add", &residual_add);
  m.impl("residual_add_backward", &residual_add_backward);
}

}  // namespace pygan::cuda
