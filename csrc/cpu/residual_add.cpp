// residual_add: out = act(base + residual), act in {none, tanh, clamp (hardtanh to [-1, 1])},
// and its backward from the saved output. One read of each input and one write, vectorized,
// computed in opmath (float32 for bf16/half, else the input type).
#include "common.h"

#include <string_view>

namespace pygan::cpu {
namespace {

enum class Act { None, Tanh, Clamp };

Act parse_act(std::string_view s) {
  if (s == "none") return Act::None;
  if (s == "tanh") return Act::Tanh;
  if (s == "clamp") return Act::Clamp;
  TORCH_CHECK(false, "pygan::residual_add: activation must be 'none', 'tanh' or 'clamp', got '", s, "'");
}

at::Tensor residual_add(const at::Tensor& base, const at::Tensor& residual, c10::string_view activation,
                        bool /*detach_base: autograd only*/) {
  check_float_cpu(base, "base");
  check_float_cpu(residual, "residual");
  check_same(base, "base", residual, "residual");
  const Act act = parse_act(activation);
  const bool keep = same_dense_layout({base, residual});
  const at::Tensor b = dense_operand(base, keep);
  const at::Tensor r = dense_operand(residual, keep);
  at::Tensor out = empty_like_layout(b, keep);
  const int64_t n = out.numel();
  if (n == 0) return out;
  PYGAN_DISPATCH_FLOATING(out.scalar_type(), "pygan::residual_add", [&] {
    using fVec = typename VecIO<scalar_t>::fVec;
    const scalar_t* bp = b.const_data_ptr<scalar_t>();
    const scalar_t* rp = r.const_data_ptr<scalar_t>();
    scalar_t* op = out.mutable_data_ptr<scalar_t>();
    at::parallel_for(0, n, kGrain, [&](int64_t begin, int64_t end) {
      switch (act) {
        case Act::None:
          vec_map(begin, end, [](const fVec& x, const fVec& y) { return x + y; }, op, bp, rp);
          break;
        case Act::Tanh:
          vec_map(begin, end, [](const fVec& x, const fVec& y) { return tanh_fast(x + y); }, op, bp, rp);
          break;
        case Act::Clamp: {
          const fVec lo(-1), hi(1);
          vec_map(begin, end,
                  [&](const fVec& x, const fVec& y) { return at::vec::clamp(x + y, lo, hi); }, op, bp, rp);
          break;
        }
      }
    });
  });
  return out;
}

// grad_pre = grad * act'(pre), written from the saved output: tanh' = 1 - out^2; hardtanh' = 1
// strictly inside (-1, 1) and 0 at and beyond the bounds (as F.hardtanh), which `out` alone
// determines exactly.
at::Tensor residual_add_backward(const at::Tensor& grad, const at::Tensor& out, c10::string_view activation) {
  check_float_cpu(grad, "grad");
  check_float_cpu(out, "out");
  check_same(grad, "grad", out, "out");
  const Act act = parse_act(activation);
  const bool keep = same_dense_layout({out, grad});
  const at::Tensor g = dense_operand(grad, keep);
  const at::Tensor o = dense_operand(out, keep);
  at::Tensor gi = empty_like_layout(o, keep);
  const int64_t n = gi.numel();
  if (n == 0) return gi;
  PYGAN_DISPATCH_FLOATING(gi.scalar_type(), "pygan::residual_add_backward", [&] {
    using fVec = typename VecIO<scalar_t>::fVec;
    const scalar_t* gp = g.const_data_ptr<scalar_t>();
    const scalar_t* opp = o.const_data_ptr<scalar_t>();
    scalar_t* ip = gi.mutable_data_ptr<scalar_t>();
    at::parallel_for(0, n, kGrain, [&](int64_t begin, int64_t end) {
      switch (act) {
        case Act::None:
          vec_map(begin, end, [](const fVec& dy, const fVec&) { return dy; }, ip, gp, opp);
          break;
        case Act::Tanh: {
          const fVec one(1);
          vec_map(begin, end, [&](const fVec& dy, const fVec& y) { return dy * (one - y * y); }, ip, gp, opp);
          break;
        }
        case Act::Clamp: {
          const fVec lo(-1), hi(1), zero(0);
          vec_map(begin, end,
                  [&](const fVec& dy, const fVec& y) {
                    // Zero where y <= -1 or y >= 1 (lane masks), as hardtanh_backward: a NaN
                    // output compares false both ways and passes the gradient through.
                    return fVec::blendv(dy, zero, (y <= lo) | (y >= hi));
                  },
                  ip, gp, opp);
          break;
        }
      }
    });
  });
  return gi;
}

}  // namespace

TORCH_LIBRARY_IMPL(pygan, CPU, m) {
  m.impl("residual_add", &residual_add);
  m.impl("residual_add_backward", &residual_add_backward);
}

}  // namespace pygan::cpu
