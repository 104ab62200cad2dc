#include "core/nn/gated_output.hpp"

namespace expt::nn {

template <class T>
GatedOutput<T>::GatedOutput(ParameterStore<T>& store, const std::string& norm_name, const std::string& o_proj_name,
                            int d_model, int heads, int head_dim, double eps, Linear<T>* gate_proj)
    : gate_proj_(gate_proj),
      norm_(store, norm_name, heads, head_dim, eps),
      o_proj_(store, o_proj_name, heads * head_dim, d_model, ParamRole::matrix) {}

template <class T>
void GatedOutput<T>::forward(const T* x, const T* o, T* y, int rows) {
  const std::size_t n = static_cast<std::size_t>(rows) * static_cast<std::size_t>(o_proj_.in_features());
  normed_.resize(n);
  const T* gate = nullptr;
  if (gate_proj_) {
    gate_.resize(n);
    gate_proj_->forward(x, gate_.data(), rows);
    gate = gate_.data();
  }
  norm_.forward(o, gate, normed_.data(), rows);
  o_proj_.forward(normed_.data(), y, rows);
}

template <class T>
void GatedOutput<T>::backward(const T* o, const T* dy, T* d_o, T* dgate, int rows, Workspace<T>& ws) {
  const std::size_t n = static_cast<std::size_t>(rows) * static_cast<std::size_t>(o_proj_.in_features());
  const typename Workspace<T>::Frame frame(ws);
  T* const dnormed = ws.take(n);  // [rows, H d_v]
  // dnormed = dy W_o;  dW_o += dy^T normed;  then the norm (and the gate).
  o_proj_.backward(normed_.data(), dy, dnormed, rows, false);
  norm_.backward(o, gate_proj_ ? gate_.data() : nullptr, dnormed, d_o, gate_proj_ ? dgate : nullptr, rows);
}

template <class T>
bool GatedOutput<T>::backward_gate(const T* x, const T* dgate, T* dx, int rows, bool accumulate_dx) {
  if (!gate_proj_) return false;
  gate_proj_->backward(x, dgate, dx, rows, accumulate_dx);
  return true;
}

template class GatedOutput<float>;
template class GatedOutput<double>;

}  // namespace expt::nn
