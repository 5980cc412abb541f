// C++ autograd of interpolate and grad_norm_penalty (gradient_penalty) (see common.h for why C++, and the rules every
// node follows). The graph nodes' grad_fn.name() is "pygan::<op>Backward".
#include "common.h"

namespace pygan::autograd {
namespace {

PYGAN_OP(interp_op, "interpolate", Tensor(const Tensor&, const Tensor&, const Tensor&))
PYGAN_OP(interp_bwd_op, "interpolate_backward",
         std::tuple<Tensor, Tensor>(const Tensor&, const Tensor&, bool, bool))
PYGAN_OP(gnp_op, "grad_norm_penalty", std::tuple<Tensor, Tensor>(const Tensor&, double, double, bool))
PYGAN_OP(gnp_bwd_op, "grad_norm_penalty_backward",
         Tensor(const Tensor&, const Tensor&, const Tensor&, const Tensor&, double, double, bool))

// Sum over every non-batch dim: [B, ...] -> [B] (rank 1: the tensor itself, in `dtype` if given).
Tensor row_sum(const Tensor& t, std::optional<at::ScalarType> dtype = std::nullopt) {
  if (t.dim() == 1) return dtype ? t.to(*dtype) : t;
  std::vector<int64_t> dims;
  for (int64_t d = 1; d < t.dim(); ++d) dims.push_back(d);
  return t.sum(dims, /*keepdim=*/false, dtype);
}

// ---- interpolate -----------------------------------------------------------------------------

// out = real + alpha_b (fake - real): d real = (1 - alpha_b) g and d fake = alpha_b g in one call of
// the backward op; d alpha_b = sum over the row of g (fake - real) in ATen ops, only when alpha
// requires grad (real and fake are saved only then). Edges: real, fake, alpha.
struct InterpolateNode : PyganNode<InterpolateNode> {
  static constexpr const char* kName = "pygan::interpolateBackward";
  SavedVariable real_, fake_, alpha_;
  bool need_alpha_ = false;

  variable_list backward(const variable_list& grads) {
    variable_list r(3);
    const Tensor& grad = grads[0];
    if (!grad.defined()) return r;
    const bool need_real = task_should_compute_output(0), need_fake = task_should_compute_output(1);
    if (need_real || need_fake) {
      auto [gr, gf] = interp_bwd_op().call(grad, alpha_.unpack(), need_real, need_fake);
      if (need_real) r[0] = std::move(gr);
      if (need_fake) r[1] = std::move(gf);
    }
    if (need_alpha_ && task_should_compute_output(2)) {
      r[2] = row_sum(grad * (fake_.unpack() - real_.unpack()));
    }
    return r;
  }
  void release() {
    real_.reset_data();
    fake_.reset_data();
    alpha_.reset_data();
  }
};

Tensor interpolate_autograd(const Tensor& real, const Tensor& fake, const Tensor& alpha) {
  const bool graph = needs_graph(real, fake, alpha);
  Tensor out;
  {
    at::AutoDispatchBelowADInplaceOrView guard;
    out = interp_op().call(real, fake, alpha);
  }
  if (graph) {
    auto node = make_node<InterpolateNode>(real, fake, alpha);
    node->alpha_ = SavedVariable(alpha, false);
    node->need_alpha_ = alpha.requires_grad();
    if (node->need_alpha_) {
      node->real_ = SavedVariable(real, false);
      node->fake_ = SavedVariable(fake, false);
    }
    attach(node, {&out});
  }
  return out;
}

// (gr, gf) = ((1 - alpha_b) g, alpha_b g): linear in g and in alpha. Edges: grad, alpha.
struct InterpolateBackwardNode : PyganNode<InterpolateBackwardNode> {
  static constexpr const char* kName = "pygan::interpolate_backwardBackward";
  SavedVariable grad_, alpha_;
  bool need_real_ = false, need_fake_ = false;

  variable_list backward(const variable_list& gg) {
    variable_list r(2);
    // Outputs that were not requested are empty [0] tensors: their incoming gradient is ignored.
    const Tensor ggr = need_real_ ? gg[0] : Tensor();
    const Tensor ggf = need_fake_ ? gg[1] : Tensor();
    const Tensor alpha = alpha_.unpack();
    if (task_should_compute_output(0)) {
      // d/dg of (1 - a) g . ggr + a g . ggf  =  ggr + a (ggf - ggr): interpolate itself.
      if (ggr.defined() && ggf.defined()) {
        r[0] = interp_op().call(ggr, ggf, alpha);
      } else if (ggr.defined()) {
        r[0] = std::get<0>(interp_bwd_op().call(ggr, alpha, true, false));
      } else if (ggf.defined()) {
        r[0] = std::get<1>(interp_bwd_op().call(ggf, alpha, false, true));
      }
    }
    const Tensor grad = grad_.unpack();
    if (task_should_compute_output(1) && grad.defined() && (ggr.defined() || ggf.defined())) {
      Tensor d_alpha = at::zeros_like(alpha);
      if (ggf.defined()) d_alpha = d_alpha + row_sum(grad * ggf);
      if (ggr.defined()) d_alpha = d_alpha - row_sum(grad * ggr);
      r[1] = d_alpha;
    }
    return r;
  }
  void release() {
    grad_.reset_data();
    alpha_.reset_data();
  }
};

std::tuple<Tensor, Tensor> interpolate_backward_autograd(const Tensor& grad, const Tensor& alpha, bool need_real,
                                                         bool need_fake) {
  const bool graph = needs_graph(grad, alpha);
  std::tuple<Tensor, Tensor> out;
  {
    at::AutoDispatchBelowADInplaceOrView guard;
    out = interp_bwd_op().call(grad, alpha, need_real, need_fake);
  }
  if (graph) {
    auto node = make_node<InterpolateBackwardNode>(grad, alpha);
    if (alpha.requires_grad()) node->grad_ = SavedVariable(grad, false);
    node->alpha_ = SavedVariable(alpha, false);
    node->need_real_ = need_real;
    node->need_fake_ = need_fake;
    attach(node, {&std::get<0>(out), &std::get<1>(out)});
  }
  return out;
}

// ---- grad_norm_penalty -----------------------------------------------------------------------

struct PenaltyArgs {
  double target = 1.0, weight = 10.0;
  bool one_sided = false;
};

// Outputs (penalty, norms); edge: grads. A missing incoming gradient counts as zeros.
struct GradNormPenaltyNode : PyganNode<GradNormPenaltyNode> {
  static constexpr const char* kName = "pygan::grad_norm_penaltyBackward";
  SavedVariable grads_, norms_;
  PenaltyArgs args_;

  variable_list backward(const variable_list& grads) {
    variable_list r(1);
    if (!task_should_compute_output(0) || !(grads[0].defined() || grads[1].defined())) return r;
    const Tensor g = grads_.unpack(), norms = norms_.unpack(self_ptr(this));
    const Tensor gp = grads[0].defined() ? grads[0] : at::zeros({}, g.options());
    const Tensor gn = grads[1].defined() ? grads[1] : at::zeros_like(norms);
    r[0] = gnp_bwd_op().call(gp, gn, g, norms, args_.target, args_.weight, args_.one_sided);
    return r;
  }
  void release() {
    grads_.reset_data();
    norms_.reset_data();
  }
};

std::tuple<Tensor, Tensor> grad_norm_penalty_autograd(const Tensor& grads, double target, double weight,
                                                      bool one_sided) {
  const bool graph = needs_graph(grads);
  std::tuple<Tensor, Tensor> out;
  {
    at::AutoDispatchBelowADInplaceOrView guard;
    out = gnp_op().call(grads, target, weight, one_sided);
  }
  if (graph) {
    auto node = make_node<GradNormPenaltyNode>(grads);
    node->args_ = {target, weight, one_sided};
    attach(node, {&std::get<0>(out), &std::get<1>(out)});
    node->grads_ = SavedVariable(grads, false);
    node->norms_ = SavedVariable(std::get<1>(out), /*is_output=*/true);
  }
  return out;
}

// out_b = c_b(gp, gn, n) * g_b with c_b = gp * 2w h(n_b - t) / (B n_b) + gn_b / n_b (0 where n_b == 0).
// Edges: grad_penalty, grad_norms, grads, norms.
struct GradNormPenaltyBackwardNode : PyganNode<GradNormPenaltyBackwardNode> {
  static constexpr const char* kName = "pygan::grad_norm_penalty_backwardBackward";
  SavedVariable gp_, gn_, grads_, norms_;
  PenaltyArgs args_;

  variable_list backward(const variable_list& grads_in) {
    variable_list r(4);
    const Tensor& gg = grads_in[0];
    if (!gg.defined()) return r;
    const Tensor gp = gp_.unpack(), gn = gn_.unpack(), grads = grads_.unpack(), norms = norms_.unpack();
    const bool need_gp = task_should_compute_output(0), need_gn = task_should_compute_output(1);
    const bool need_n = task_should_compute_output(3);
    // c does not depend on g: d/dg = c * gg, the same op applied to gg.
    if (task_should_compute_output(2)) {
      r[2] = gnp_bwd_op().call(gp, gn, gg, norms, args_.target, args_.weight, args_.one_sided);
    }
    if (need_gp || need_gn || need_n) {
      // s_b = <gg_b, g_b>, then the chain through c_b (every factor 0 where n_b == 0).
      const Tensor s = row_sum(gg * grads, norms.scalar_type());
      const Tensor zero = norms.eq(0);
      const Tensor n = at::where(zero, at::ones_like(norms), norms);
      const Tensor gap = norms - args_.target;
      const Tensor h = args_.one_sided ? gap.clamp_min(0) : gap;
      const c10::SymFloat scale = (2.0 * args_.weight) / grads.sym_size(0).max(c10::SymInt(1));
      if (need_gp) {
        r[0] = (s * at::where(zero, 0.0, h.mul(c10::Scalar(scale)) / n)).sum().to(gp.scalar_type());
      }
      if (need_gn) r[1] = at::where(zero, 0.0, s / n).to(gn.scalar_type());
      if (need_n) {
        const Tensor dh = args_.one_sided ? gap.ge(0).to(norms.scalar_type()) : at::ones_like(norms);
        const Tensor n2 = n.square();
        const Tensor dc_dn =
            gp.to(norms.scalar_type()).mul(c10::Scalar(scale)) * (dh * n - h) / n2 - gn / n2;
        r[3] = at::where(zero, 0.0, s * dc_dn);
      }
    }
    return r;
  }
  void release() {
    gp_.reset_data();
    gn_.reset_data();
    grads_.reset_data();
    norms_.reset_data();
  }
};

Tensor grad_norm_penalty_backward_autograd(const Tensor& grad_penalty, const Tensor& grad_norms,
                                           const Tensor& grads, const Tensor& norms, double target, double weight,
                                           bool one_sided) {
  const bool graph = needs_graph(grad_penalty, grad_norms, grads, norms);
  Tensor out;
  {
    at::AutoDispatchBelowADInplaceOrView guard;
    out = gnp_bwd_op().call(grad_penalty, grad_norms, grads, norms, target, weight, one_sided);
  }
  if (graph) {
    auto node = make_node<GradNormPenaltyBackwardNode>(grad_penalty, grad_norms, grads, norms);
    node->gp_ = SavedVariable(grad_penalty, false);
    node->gn_ = SavedVariable(grad_norms, false);
    node->grads_ = SavedVariable(grads, false);
    node->norms_ = SavedVariable(norms, false);
    node->args_ = {target, weight, one_sided};
    attach(node, {&out});
  }
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(pygan, Autograd, m) {
  m.impl("interpolate", &interpolate_autograd);
  m.impl("interpolate_backward", &interpolate_backward_autograd);
  m.impl("grad_norm_penalty", &grad_norm_penalty_autograd);
  m.impl("grad_norm_penalty_backward", &grad_norm_penalty_backward_autograd);
}

}  // namespace pygan::autograd
