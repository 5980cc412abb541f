// C++ autograd of residual_add (see common.h for why C++, and the rules every
// node follows). The graph nodes' grad_fn.name() is "pygan::<op>Backward".
#include "common.h"

namespace pygan::autograd {
namespace {

PYGAN_OP(residual_op, "residual_add", Tensor(const Tensor&, const Tensor&, c10::string_view, bool))
PYGAN_OP(residual_bwd_op, "residual_add_backward", Tensor(const Tensor&, const Tensor&, c10::string_view))

// ---- residual_add ----------------------------------------------------------------------------

// out = act(base + residual); the gradient grad * act'(out), the same for both inputs (none to base
// with detach_base: its edge is left invalid), from the saved output.
struct ResidualAddNode : PyganNode<ResidualAddNode> {
  static constexpr const char* kName = "pygan::residual_addBackward";
  SavedVariable out_;
  std::string act_;

  variable_list backward(const variable_list& grads) {
    variable_list r(2);
    if (!grads[0].defined()) return r;
    const Tensor g = act_ == "none" ? grads[0] : residual_bwd_op().call(grads[0], out_.unpack(self_ptr(this)), act_);
    if (task_should_compute_output(0)) r[0] = g;
    if (task_should_compute_output(1)) r[1] = g;
    return r;
  }
  void release() { out_.reset_data(); }
};

Tensor residual_add_autograd(const Tensor& base, const Tensor& residual, c10::string_view act,
                             bool detach_base) {
  // With detach_base the base never receives a gradient: only the residual decides.
  const Tensor& base_in = detach_base ? Tensor() : base;
  const bool graph = needs_graph(base_in, residual);
  Tensor out;
  {
    at::AutoDispatchBelowADInplaceOrView guard;
    out = residual_op().call(base, residual, act, detach_base);
  }
  if (graph) {
    auto node = make_node<ResidualAddNode>(base_in, residual);
    node->act_ = std::string(act);
    attach(node, {&out});
    if (act != "none") node->out_ = SavedVariable(out, /*is_output=*/true);
  }
  return out;
}

// grad_in = grad * act'(out). d/d grad is the same op on gg; d/d out is -2 out grad gg for tanh
// (tanh' = 1 - out^2) and 0 for clamp (hardtanh' is piecewise constant) and none.
struct ResidualAddBackwardNode : PyganNode<ResidualAddBackwardNode> {
  static constexpr const char* kName = "pygan::residual_add_backwardBackward";
  SavedVariable grad_, out_;
  std::string act_;

  variable_list backward(const variable_list& gg) {
    variable_list r(2);
    if (!gg[0].defined()) return r;
    if (task_should_compute_output(0)) r[0] = residual_bwd_op().call(gg[0], out_.unpack(), act_);
    if (task_should_compute_output(1) && act_ == "tanh") {
      r[1] = gg[0].mul(grad_.unpack()).mul(out_.unpack()).mul(-2.0);
    }
    return r;
  }
  void release() {
    grad_.reset_data();
    out_.reset_data();
  }
};

Tensor residual_add_backward_autograd(const Tensor& grad, const Tensor& out, c10::string_view act) {
  const bool graph = needs_graph(grad, out);
  Tensor gin;
  {
    at::AutoDispatchBelowADInplaceOrView guard;
    gin = residual_bwd_op().call(grad, out, act);
  }
  if (graph) {
    auto node = make_node<ResidualAddBackwardNode>(grad, out);
    node->act_ = std::string(act);
    node->grad_ = SavedVariable(grad, false);
    node->out_ = SavedVariable(out, false);
    attach(node, {&gin});
  }
  return gin;
}

}  // namespace

TORCH_LIBRARY_IMPL(pygan, Autograd, m) {
  m.impl("residual_add", &residual_add_autograd);
  m.impl("residual_add_backward", &residual_add_backward_autograd);
}

}  // namespace pygan::autograd
