// The fused pieces of gradient_penalty on CUDA (contracts as pygan/ops/gradient_penalty/ and the
// CPU kernels):
//
// * interpolate(real, fake, alpha[B]) = real + alpha_b (fake - real), layout rule on {real, fake}
//   (batch is outermost in every dense layout, so row b is storage [b*D, (b+1)*D));
//   interpolate_backward(grad, alpha, need_real, need_fake) = ((1 - alpha_b) g, alpha_b g), an empty
//   [0] tensor for a side not needed; outputs follow the layout rule on {grad}.
// * grad_norm_penalty(grads, target, weight, one_sided) = (penalty, norms): n_b = ||row b||_2,
//   penalty = weight * mean_b h(n_b - target)^2 (h = identity or max(0, .)), 0-dim in grads' dtype;
//   norms float32 (float64 for float64); B = 0 gives a NaN penalty.
//   grad_norm_penalty_backward(grad_penalty, grad_norms, grads, norms, target, weight, one_sided) =
//   c_b g_b, c_b = (grad_penalty 2 weight h(n_b - t) / B + grad_norms_b) / n_b, 0 where n_b == 0; the
//   output follows the layout rule on {grads}.
//
// Elementwise kernels: grid-stride over 16-byte vectors when D is a multiple of the vector width
// (each vector then lies in one row; one row division per vector), else scalars; the row division is
// a 32-bit multiply-high when every index fits. Norms: deterministic two-stage reduction: blocks over
// (row, slice of the row) write partial sums of squares (rows of <= 64 elements: one thread per row),
// then one block combines each row's partials in a fixed order, takes the square root and reduces
// the penalty. No float atomics. The incoming 0-dim gradient is read on the device (no host sync).
#define TORCH_ASSERT_ONLY_METHOD_OPERATORS
#include "common.cuh"

#include <cmath>
#include <limits>
#include <tuple>

namespace pygan::cuda {
namespace {

// ---- interpolate -------------------------------------------------------------------------------------

// MODE 0: out0 = r + a (f - r) from (x0 = real, x1 = fake).
// MODE 1: out0 = (1 - a) g, out1 = a g from x0 = grad (NEED0 / NEED1 say which outputs are written).
template <typename T, int MODE, bool NEED0, bool NEED1, bool VEC, typename Idx, typename Div>
__global__ void __launch_bounds__(kThreads)
    interp_kernel(const T* __restrict__ x0, const T* __restrict__ x1, const T* __restrict__ alpha, int64_t s_alpha,
                  T* __restrict__ out0, T* __restrict__ out1, Idx n, Div row_of) {
  using A = acc_t<T>;
  const Idx stride = static_cast<Idx>(gridDim.x) * blockDim.x;
  const Idx tid = static_cast<Idx>(blockIdx.x) * blockDim.x + threadIdx.x;
  auto one = [&](A a, A v0, A v1, T& o0, T& o1) {
    if constexpr (MODE == 0) {
      o0 = st<T>(v0 + a * (v1 - v0));
    } else {
      if constexpr (NEED0) o0 = st<T>((A(1) - a) * v0);
      if constexpr (NEED1) o1 = st<T>(a * v0);
    }
  };
  if constexpr (VEC) {
    constexpr int N = Vec<T>::N;
    const Idx nvec = n / N;  // n is a multiple of N here (D % N == 0)
    for (Idx i = tid; i < nvec; i += stride) {
      const Idx base = i * N;
      const A a = ld(alpha[static_cast<int64_t>(row_of(base)) * s_alpha]);
      const Vec<T> v0 = load_vec(x0 + base);
      Vec<T> v1;
      if constexpr (MODE == 0) v1 = load_vec(x1 + base);
      Vec<T> o0, o1;
#pragma unroll
      for (int j = 0; j < N; ++j) one(a, ld(v0.v[j]), MODE == 0 ? ld(v1.v[j]) : A(0), o0.v[j], o1.v[j]);
      if (MODE == 0 || NEED0) store_vec(out0 + base, o0);
      if (MODE == 1 && NEED1) store_vec(out1 + base, o1);
    }
  } else {
    for (Idx i = tid; i < n; i += stride) {
      const A a = ld(alpha[static_cast<int64_t>(row_of(i)) * s_alpha]);
      T o0, o1;
      one(a, ld(x0[i]), MODE == 0 ? ld(x1[i]) : A(0), o0, o1);
      if (MODE == 0 || NEED0) out0[i] = o0;
      if (MODE == 1 && NEED1) out1[i] = o1;
    }
  }
}

// Launches interp_kernel with the right index type / division / vector path.
template <typename T, int MODE, bool NEED0, bool NEED1>
void launch_interp(const T* x0, const T* x1, const T* alpha, int64_t s_alpha, T* out0, T* out1, int64_t n,
                   int64_t d) {
  constexpr int N = Vec<T>::N;
  const bool vec = d % N == 0 && aligned16(x0) && (MODE == 1 || aligned16(x1)) &&
                   (!(MODE == 0 || NEED0) || aligned16(out0)) && (!(MODE == 1 && NEED1) || aligned16(out1));
  const unsigned grid = grid_1d(vec ? n / N : n, kThreads);
  auto go = [&](auto vec_c, auto idx_c) {
    constexpr bool V = decltype(vec_c)::value;
    if constexpr (decltype(idx_c)::value) {
      interp_kernel<T, MODE, NEED0, NEED1, V, uint32_t, RowDiv32><<<grid, kThreads, 0, stream()>>>(
          x0, x1, alpha, s_alpha, out0, out1, static_cast<uint32_t>(n), RowDiv32(static_cast<uint32_t>(d)));
    } else {
      interp_kernel<T, MODE, NEED0, NEED1, V, int64_t, RowDiv64>
          <<<grid, kThreads, 0, stream()>>>(x0, x1, alpha, s_alpha, out0, out1, n, RowDiv64(d));
    }
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  };
  const bool small = n < (int64_t(1) << 31) - 2 * static_cast<int64_t>(grid) * kThreads;
  if (vec) {
    small ? go(std::true_type{}, std::true_type{}) : go(std::true_type{}, std::false_type{});
  } else {
    small ? go(std::false_type{}, std::true_type{}) : go(std::false_type{}, std::false_type{});
  }
}

void check_alpha(const at::Tensor& alpha, const at::Tensor& like) {
  check_float_cuda(alpha, "alpha");
  TORCH_CHECK(alpha.dim() == 1 && alpha.size(0) == like.size(0), "pygan: alpha must have shape [",
              like.size(0), "], got ", alpha.sizes());
  TORCH_CHECK(alpha.scalar_type() == like.scalar_type(), "pygan: alpha must have dtype ", like.scalar_type(),
              ", got ", alpha.scalar_type());
  TORCH_CHECK(alpha.device() == like.device(), "pygan: alpha must be on ", like.device());
}

at::Tensor interpolate(const at::Tensor& real, const at::Tensor& fake, const at::Tensor& alpha) {
  check_float_cuda(real, "real");
  check_float_cuda(fake, "fake");
  check_same(real, "real", fake, "fake");
  TORCH_CHECK(real.dim() >= 1, "pygan: real must have a batch dimension");
  check_alpha(alpha, real);
  const c10::cuda::CUDAGuard guard(real.device());
  const bool keep = same_dense_layout({real, fake});
  const at::Tensor r = dense_operand(real, keep);
  const at::Tensor f = dense_operand(fake, keep);
  at::Tensor out = empty_like_layout(r, keep);
  const int64_t n = out.numel();
  if (n == 0) return out;
  const int64_t d = n / out.size(0);
  PYGAN_DISPATCH_FLOATING(out.scalar_type(), "pygan::interpolate_cuda", [&] {
    launch_interp<scalar_t, 0, true, false>(r.const_data_ptr<scalar_t>(), f.const_data_ptr<scalar_t>(),
                                            alpha.const_data_ptr<scalar_t>(), alpha.stride(0),
                                            out.mutable_data_ptr<scalar_t>(), nullptr, n, d);
  });
  return out;
}

std::tuple<at::Tensor, at::Tensor> interpolate_backward(const at::Tensor& grad, const at::Tensor& alpha,
                                                        bool need_real, bool need_fake) {
  check_float_cuda(grad, "grad");
  TORCH_CHECK(grad.dim() >= 1, "pygan: grad must have a batch dimension");
  check_alpha(alpha, grad);
  const c10::cuda::CUDAGuard guard(grad.device());
  const bool keep = same_dense_layout({grad});
  const at::Tensor g = dense_operand(grad, keep);
  at::Tensor gr = need_real ? empty_like_layout(g, keep) : at::empty({0}, g.options());
  at::Tensor gf = need_fake ? empty_like_layout(g, keep) : at::empty({0}, g.options());
  const int64_t n = g.numel();
  if (n == 0 || !(need_real || need_fake)) return {gr, gf};
  const int64_t d = n / g.size(0);
  PYGAN_DISPATCH_FLOATING(g.scalar_type(), "pygan::interpolate_backward_cuda", [&] {
    const scalar_t* gp = g.const_data_ptr<scalar_t>();
    const scalar_t* ap = alpha.const_data_ptr<scalar_t>();
    scalar_t* rp = need_real ? gr.mutable_data_ptr<scalar_t>() : nullptr;
    scalar_t* fp = need_fake ? gf.mutable_data_ptr<scalar_t>() : nullptr;
    if (need_real && need_fake) {
      launch_interp<scalar_t, 1, true, true>(gp, nullptr, ap, alpha.stride(0), rp, fp, n, d);
    } else if (need_real) {
      launch_interp<scalar_t, 1, true, false>(gp, nullptr, ap, alpha.stride(0), rp, nullptr, n, d);
    } else {
      launch_interp<scalar_t, 1, false, true>(gp, nullptr, ap, alpha.stride(0), nullptr, fp, n, d);
    }
  });
  return {gr, gf};
}

// ---- grad_norm_penalty ---------------------------------------------------------------------------------

// Rows of <= kSmallRow elements: one thread per row, part[b] = sum of squares.
constexpr int64_t kSmallRow = 64;

template <typename T>
__global__ void __launch_bounds__(kThreads)
    sumsq_rows_kernel(const T* __restrict__ g, acc_t<T>* __restrict__ part, int64_t rows, int64_t d) {
  using A = acc_t<T>;
  for (int64_t b = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; b < rows;
       b += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    A s = 0;
    for (int64_t j = 0; j < d; ++j) {
      const A x = ld(g[b * d + j]);
      s += x * x;
    }
    part[b] = s;
  }
}

// Block (b, s) of a grid of rows * splits blocks: part[b * splits + s] = sum of squares of row b over
// columns [s * cols, min(d, (s + 1) * cols)). VEC: d and cols are multiples of the vector width.
template <typename T, bool VEC>
__global__ void __launch_bounds__(kThreads)
    sumsq_split_kernel(const T* __restrict__ g, acc_t<T>* __restrict__ part, int64_t d, int64_t splits,
                       int64_t cols) {
  using A = acc_t<T>;
  const int64_t blk = blockIdx.x;
  const int64_t b = blk / splits, s = blk % splits;
  const int64_t c0 = s * cols;
  const int64_t c1 = std::min(d, c0 + cols);
  const T* row = g + b * d;
  A acc = 0;
  if constexpr (VEC) {
    constexpr int N = Vec<T>::N;
    for (int64_t c = c0 + static_cast<int64_t>(threadIdx.x) * N; c < c1; c += static_cast<int64_t>(kThreads) * N) {
      const Vec<T> v = load_vec(row + c);
#pragma unroll
      for (int j = 0; j < N; ++j) {
        const A x = ld(v.v[j]);
        acc += x * x;
      }
    }
  } else {
    for (int64_t c = c0 + threadIdx.x; c < c1; c += kThreads) {
      const A x = ld(row[c]);
      acc += x * x;
    }
  }
  acc = block_sum(acc);
  if (threadIdx.x == 0) part[blk] = acc;
}

constexpr int kFinalThreads = 1024;

template <typename T>
__global__ void __launch_bounds__(kFinalThreads)
    penalty_kernel(const acc_t<T>* __restrict__ part, acc_t<T>* __restrict__ norms, T* __restrict__ penalty,
                   int64_t rows, int64_t splits, double target, double weight, bool one_sided) {
  using A = acc_t<T>;
  const A t = static_cast<A>(target);
  A acc = 0;
  for (int64_t b = threadIdx.x; b < rows; b += kFinalThreads) {
    A s = 0;
    for (int64_t j = 0; j < splits; ++j) s += part[b * splits + j];
    const A nb = sqrt(s);
    norms[b] = nb;
    A gap = nb - t;
    if (one_sided) gap = gap > A(0) ? gap : A(0);
    acc += gap * gap;
  }
  acc = block_sum(acc);
  if (threadIdx.x == 0) *penalty = st<T>(static_cast<A>(weight) * (acc / static_cast<A>(rows)));
}

std::tuple<at::Tensor, at::Tensor> grad_norm_penalty(const at::Tensor& grads, double target, double weight,
                                                     bool one_sided) {
  check_float_cuda(grads, "grads");
  TORCH_CHECK(grads.dim() >= 1, "pygan: grads must have a batch dimension");
  const c10::cuda::CUDAGuard guard(grads.device());
  const bool keep = same_dense_layout({grads});
  const at::Tensor g = dense_operand(grads, keep);
  const at::ScalarType acc_type = g.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
  const int64_t rows = g.size(0);
  at::Tensor norms = at::empty({rows}, g.options().dtype(acc_type));
  at::Tensor penalty = at::empty({}, g.options());
  if (rows == 0) {
    penalty.fill_(std::numeric_limits<double>::quiet_NaN());
    return {penalty, norms};
  }
  const int64_t d = g.numel() / rows;
  PYGAN_DISPATCH_FLOATING(g.scalar_type(), "pygan::grad_norm_penalty_cuda", [&] {
    using A = acc_t<scalar_t>;
    constexpr int N = Vec<scalar_t>::N;
    const scalar_t* gp = g.const_data_ptr<scalar_t>();
    int64_t splits = 1;
    at::Tensor part;
    if (d <= kSmallRow) {
      part = at::empty({rows}, g.options().dtype(acc_type));
      sumsq_rows_kernel<scalar_t><<<grid_1d(rows, kThreads), kThreads, 0, stream()>>>(
          gp, part.mutable_data_ptr<A>(), rows, d);
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    } else {
      // Enough (row, slice) blocks for ~2 waves, each slice at least 4 vectors per thread.
      const int64_t target_blocks = static_cast<int64_t>(sm_count()) * 8 * 2;
      const int64_t min_cols = static_cast<int64_t>(kThreads) * N * 4;
      splits = std::max<int64_t>(1, std::min((target_blocks + rows - 1) / rows, (d + min_cols - 1) / min_cols));
      int64_t cols = (d + splits - 1) / splits;
      cols = (cols + N - 1) / N * N;
      splits = (d + cols - 1) / cols;
      TORCH_CHECK(rows * splits < (int64_t(1) << 31), "pygan::grad_norm_penalty: too many rows for the CUDA kernel");
      part = at::empty({rows * splits}, g.options().dtype(acc_type));
      const bool vec = d % N == 0 && aligned16(gp);
      const unsigned grid = static_cast<unsigned>(rows * splits);
      if (vec) {
        sumsq_split_kernel<scalar_t, true>
            <<<grid, kThreads, 0, stream()>>>(gp, part.mutable_data_ptr<A>(), d, splits, cols);
      } else {
        sumsq_split_kernel<scalar_t, false>
            <<<grid, kThreads, 0, stream()>>>(gp, part.mutable_data_ptr<A>(), d, splits, cols);
      }
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    }
    penalty_kernel<scalar_t><<<1, kFinalThreads, 0, stream()>>>(
        part.const_data_ptr<A>(), norms.mutable_data_ptr<A>(), penalty.mutable_data_ptr<scalar_t>(), rows, splits,
        target, weight, one_sided);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return {penalty, norms};
}

template <typename T, bool VEC, typename Idx, typename Div>
__global__ void __launch_bounds__(kThreads)
    gnp_backward_kernel(const T* __restrict__ g, const T* __restrict__ grad_penalty,
                        const acc_t<T>* __restrict__ grad_norms, int64_t s_gn, const acc_t<T>* __restrict__ norms,
                        int64_t s_n, T* __restrict__ out, Idx n, Div row_of, double target, double weight,
                        int64_t rows, bool one_sided) {
  using A = acc_t<T>;
  const A gpen = ld(*grad_penalty);
  const A k = static_cast<A>(2.0 * weight) * gpen;
  const A t = static_cast<A>(target);
  const A inv_rows = A(1) / static_cast<A>(rows);
  auto coef = [&](int64_t b) -> A {
    const A nb = norms[b * s_n];
    if (nb == A(0)) return A(0);
    A gap = nb - t;
    if (one_sided) gap = gap > A(0) ? gap : A(0);
    return (k * gap * inv_rows + grad_norms[b * s_gn]) / nb;
  };
  const Idx stride = static_cast<Idx>(gridDim.x) * blockDim.x;
  const Idx tid = static_cast<Idx>(blockIdx.x) * blockDim.x + threadIdx.x;
  if constexpr (VEC) {
    constexpr int N = Vec<T>::N;
    const Idx nvec = n / N;
    for (Idx i = tid; i < nvec; i += stride) {
      const Idx base = i * N;
      const A c = coef(static_cast<int64_t>(row_of(base)));
      const Vec<T> v = load_vec(g + base);
      Vec<T> o;
#pragma unroll
      for (int j = 0; j < N; ++j) o.v[j] = st<T>(c * ld(v.v[j]));
      store_vec(out + base, o);
    }
  } else {
    for (Idx i = tid; i < n; i += stride) out[i] = st<T>(coef(static_cast<int64_t>(row_of(i))) * ld(g[i]));
  }
}

at::Tensor grad_norm_penalty_backward(const at::Tensor& grad_penalty, const at::Tensor& grad_norms,
                                      const at::Tensor& grads, const at::Tensor& norms, double target,
                                      double weight, bool one_sided) {
  check_float_cuda(grads, "grads");
  TORCH_CHECK(grads.dim() >= 1, "pygan: grads must have a batch dimension");
  const c10::cuda::CUDAGuard guard(grads.device());
  const int64_t rows = grads.size(0);
  const at::ScalarType acc_type = grads.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
  TORCH_CHECK(grad_penalty.numel() == 1, "pygan: grad_penalty must hold one element");
  TORCH_CHECK(grad_norms.dim() == 1 && grad_norms.size(0) == rows, "pygan: grad_norms must have shape [", rows, "]");
  TORCH_CHECK(norms.dim() == 1 && norms.size(0) == rows, "pygan: norms must have shape [", rows, "]");
  for (const at::Tensor* t : {&grad_penalty, &grad_norms, &norms}) {
    TORCH_CHECK(t->device() == grads.device(), "pygan: grad_norm_penalty_backward's tensors must share a device");
  }
  const bool keep = same_dense_layout({grads});
  const at::Tensor g = dense_operand(grads, keep);
  at::Tensor out = empty_like_layout(g, keep);
  const int64_t n = g.numel();
  if (n == 0) return out;
  const int64_t d = n / rows;
  // Scalars/vectors of other dtypes (e.g. a float32 grad_norms from a caller) are converted once.
  const at::Tensor gpen = grad_penalty.to(g.scalar_type()).reshape({});
  const at::Tensor gn = grad_norms.to(acc_type);
  const at::Tensor nm = norms.to(acc_type);
  PYGAN_DISPATCH_FLOATING(g.scalar_type(), "pygan::grad_norm_penalty_backward_cuda", [&] {
    using A = acc_t<scalar_t>;
    constexpr int N = Vec<scalar_t>::N;
    const scalar_t* gp = g.const_data_ptr<scalar_t>();
    scalar_t* op = out.mutable_data_ptr<scalar_t>();
    const bool vec = d % N == 0 && aligned16(gp) && aligned16(op);
    const unsigned grid = grid_1d(vec ? n / N : n, kThreads);
    const bool small = n < (int64_t(1) << 31) - 2 * static_cast<int64_t>(grid) * kThreads;
    auto go = [&](auto vec_c, auto small_c) {
      constexpr bool V = decltype(vec_c)::value;
      if constexpr (decltype(small_c)::value) {
        gnp_backward_kernel<scalar_t, V, uint32_t, RowDiv32><<<grid, kThreads, 0, stream()>>>(
            gp, gpen.const_data_ptr<scalar_t>(), gn.const_data_ptr<A>(), gn.stride(0), nm.const_data_ptr<A>(),
            nm.stride(0), op, static_cast<uint32_t>(n), RowDiv32(static_cast<uint32_t>(d)), target, weight, rows,
            one_sided);
      } else {
        gnp_backward_kernel<scalar_t, V, int64_t, RowDiv64><<<grid, kThreads, 0, stream()>>>(
            gp, gpen.const_data_ptr<scalar_t>(), gn.const_data_ptr<A>(), gn.stride(0), nm.const_data_ptr<A>(),
            nm.stride(0), op, n, RowDiv64(d), target, weight, rows, one_sided);
      }
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    };
    if (vec) {
      small ? go(std::true_type{}, std::true_type{}) : go(std::true_type{}, std::false_type{});
    } else {
      small ? go(std::false_type{}, std::true_type{}) : go(std::false_type{}, std::false_type{});
    }
  });
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(pygan, CUDA, m) {
  m.impl("interpolate", &interpolate);
  m.impl("interpolate_backward", &interpolate_backward);
  m.impl("grad_norm_penalty", &grad_norm_penalty);
  m.impl("grad_norm_penalty_backward", &grad_norm_penalty_backward);
}

}  // namespace pygan::cuda
