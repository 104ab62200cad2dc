#include "experiments/trial/optimizer_diagnostics.hpp"

#include <algorithm>
#include <stdexcept>

#include "core/io/hdf5.hpp"

namespace expt::experiments {

namespace h5 = io::h5;

DiagnosticsRecorder::DiagnosticsRecorder(const nn::ParameterStore<float>& store) {
  std::size_t largest = 0;
  for (std::size_t i = 0; i < store.params().size(); ++i) {
    const auto& p = store.params()[i];
    if (p.shape.size() != 2) continue;
    matrices_.push_back(i);
    names_.push_back(p.name);
    largest = std::max(largest, p.size + static_cast<std::size_t>(p.rows() + p.cols()));
  }
  work_.assign(largest, 0.0);
}

void DiagnosticsRecorder::record(std::int64_t step, const nn::ParameterStore<float>& store,
                                 const std::vector<float>& before) {
  steps_.push_back(step);
  for (std::size_t i : matrices_) {
    const auto& p = store.params()[i];
    const auto row = optim::matrix_diagnostics(before.data() + p.offset, store.value(i), store.grad(i),
                                               static_cast<int>(p.rows()), static_cast<int>(p.cols()), work_.data());
    values_.insert(values_.end(), row.begin(), row.end());
  }
}

void DiagnosticsRecorder::save(StateDict& state) const {
  state.put("diagnostics/step", std::span<const std::int64_t>(steps_), {static_cast<std::int64_t>(steps_.size())});
  state.put("diagnostics/values", std::span<const double>(values_),
            {static_cast<std::int64_t>(steps_.size()), static_cast<std::int64_t>(matrices_.size()),
             optim::kDiagnosticFields});
}

void DiagnosticsRecorder::load(const StateDict& state) {
  steps_.clear();
  values_.clear();
  if (!state.contains("diagnostics/step")) return;
  steps_ = state.ints("diagnostics/step");
  values_ = state.doubles("diagnostics/values");
  if (values_.size() != steps_.size() * matrices_.size() * optim::kDiagnosticFields)
    throw std::runtime_error("checkpoint: diagnostics/values does not match the model's matrices");
}

void DiagnosticsRecorder::write(const std::filesystem::path& path) const {
  const std::filesystem::path tmp(path.string() + ".tmp");
  {
    h5::File file = h5::create_file(tmp, false);
    const hsize_t rows = steps_.size(), cols = matrices_.size();
    if (rows > 0) h5::write_array<std::int64_t>(file, "step", steps_, {rows});
    // /names: fixed-length strings, one per 2-D parameter.
    std::size_t width = 1;
    for (const auto& n : names_) width = std::max(width, n.size());
    std::string buffer(width * names_.size(), '\0');
    for (std::size_t k = 0; k < names_.size(); ++k)
      std::copy(names_[k].begin(), names_[k].end(), buffer.begin() + k * width);
    if (!names_.empty()) {
      h5::ErrorGuard guard;
      h5::Datatype type = h5::string_type(width);
      h5::Dataspace space(h5::check_id(H5Screate_simple(1, &cols, nullptr), "dataspace of /names"), H5Sclose, "/names");
      h5::Dataset names(
          h5::check_id(H5Dcreate2(file.id(), "names", type.id(), space.id(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT),
                       "create /names in " + tmp.string()),
          H5Dclose, tmp.string() + ":/names");
      h5::check_status(H5Dwrite(names.id(), type.id(), H5S_ALL, H5S_ALL, H5P_DEFAULT, buffer.data()),
                       "write /names in " + tmp.string());
      names.close();
    }
    if (rows > 0)
      for (int f = 0; f < optim::kDiagnosticFields; ++f) {
        std::vector<double> column(rows * cols);
        for (std::size_t k = 0; k < rows * cols; ++k) column[k] = values_[k * optim::kDiagnosticFields + f];
        h5::write_array<double>(file, std::string(optim::kDiagnosticNames[f]), column, {rows, cols});
      }
    h5::write_attribute(file, "power_iterations", static_cast<std::int64_t>(optim::kPowerIterations));
    file.close();
  }
  std::filesystem::rename(tmp, path);
}

}  // namespace expt::experiments
