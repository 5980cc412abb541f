// The pygan operator library: every schema is declared here, once. Kernels register against these
// schemas per backend: csrc/cpu/<op>.cpp (TORCH_LIBRARY_IMPL(pygan, CPU)), csrc/cuda/<op>.cu
// (TORCH_LIBRARY_IMPL(pygan, CUDA)); autograd in C++ (csrc/autograd/<op>.cpp, TORCH_LIBRARY_IMPL(pygan,
// Autograd)). Fake (meta) kernels are registered from Python (pygan/ops/<op>/contract.py), beside
// the references (pygan/ops/<op>/reference.py).
#include <Python.h>
#include <torch/library.h>

TORCH_LIBRARY(pygan, m) {
  // ---- residual_add (pygan/ops/residual_add/) -----------------------------------------------
  m.def("residual_add(Tensor base, Tensor residual, str activation, bool detach_base) -> Tensor");
  m.def("residual_add_backward(Tensor grad, Tensor out, str activation) -> Tensor");

  // ---- feature_regularizer (pygan/ops/feature_regularizer/) ---------------------------------
  m.def(
      "feature_regularizer(Tensor[] a, Tensor[] b, int p, str reduction, float[] weights) -> Tensor");
  m.def(
      "feature_regularizer_backward(Tensor grad, Tensor[] a, Tensor[] b, int p, str reduction, "
      "float[] weights, bool need_a, bool need_b) -> (Tensor[], Tensor[])");

  // ---- gram_matrix / style_loss (pygan/ops/style_loss/) ------------------------------------
  m.def("gram_diff(Tensor fx, Tensor? fy, str normalize) -> Tensor");
  m.def(
      "gram_diff_backward(Tensor grad, Tensor fx, Tensor? fy, str normalize, bool need_x, "
      "bool need_y) -> (Tensor, Tensor)");

  // ---- gradient_penalty (pygan/ops/gradient_penalty/) --------------------------------------
  m.def("interpolate(Tensor real, Tensor fake, Tensor alpha) -> Tensor");
  m.def(
      "interpolate_backward(Tensor grad, Tensor alpha, bool need_real, bool need_fake) -> "
      "(Tensor, Tensor)");
  m.def(
      "grad_norm_penalty(Tensor grads, float target, float weight, bool one_sided) -> "
      "(Tensor, Tensor)");
  m.def(
      "grad_norm_penalty_backward(Tensor grad_penalty, Tensor grad_norms, Tensor grads, "
      "Tensor norms, float target, float weight, bool one_sided) -> Tensor");
}

// `import pygan._C` loads the schemas (and lets Python find this file). No Python bindings: all
// calls go through torch.ops.pygan.*.
extern "C" {
PyObject* PyInit__C(void) {
  static struct PyModuleDef module_def = {PyModuleDef_HEAD_INIT, "_C", nullptr, -1, nullptr,
                                          nullptr, nullptr, nullptr, nullptr};
  return PyModule_Create(&module_def);
}
}
