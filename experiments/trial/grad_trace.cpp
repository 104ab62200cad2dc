#include "experiments/trial/grad_trace.hpp"

#include <algorithm>
#include <cmath>
#include <map>
#include <stdexcept>
#include <system_error>

#include "core/io/hdf5.hpp"
#include "kernels/gemm.hpp"
#include "optimizers/optimizer.hpp"

namespace expt::experiments {

namespace fs = std::filesystem;
namespace h5 = io::h5;

namespace {

fs::path tmp_path(const fs::path& path) { return fs::path(path.string() + ".tmp"); }

std::vector<hsize_t> dims_of(const nn::ParamInfo& p) {
  std::vector<hsize_t> dims;
  for (auto d : p.shape) dims.push_back(static_cast<hsize_t>(d));
  return dims;
}

std::string shape_text(const std::vector<hsize_t>& dims) {
  std::string s = "[";
  for (std::size_t k = 0; k < dims.size(); ++k) s += (k ? ", " : "") + std::to_string(dims[k]);
  return s + "]";
}

[[noreturn]] void bad_trace(const fs::path& trace, const std::string& message) {
  throw std::runtime_error("gradient trace " + trace.string() + ": " + message);
}

// Reads row `row` of a dataset [rows, ...] into out (row_size floats), converted to float.
void read_row(const h5::Dataset& dataset, hsize_t row, float* out, std::size_t row_size) {
  h5::ErrorGuard guard;
  h5::Dataspace file_space(h5::check_id(H5Dget_space(dataset.id()), "dataspace of " + dataset.where()), H5Sclose,
                           dataset.where());
  std::vector<hsize_t> dims = h5::dataset_dims(dataset);
  std::vector<hsize_t> start(dims.size(), 0), count = dims;
  start[0] = row;
  count[0] = 1;
  h5::check_status(H5Sselect_hyperslab(file_space.id(), H5S_SELECT_SET, start.data(), nullptr, count.data(), nullptr),
                   "select row of " + dataset.where());
  const hsize_t n = static_cast<hsize_t>(row_size);
  h5::Dataspace mem_space(h5::check_id(H5Screate_simple(1, &n, nullptr), "memory space for " + dataset.where()),
                          H5Sclose, dataset.where());
  h5::check_status(H5Dread(dataset.id(), H5T_NATIVE_FLOAT, mem_space.id(), file_space.id(), H5P_DEFAULT, out),
                   "read row " + std::to_string(row) + " of " + dataset.where());
}

bool all_finite(const float* x, std::size_t n) {
  for (std::size_t k = 0; k < n; ++k)
    if (!std::isfinite(x[k])) return false;
  return true;
}

bool is_float32(const h5::Dataset& d) {
  const auto e = h5::element_info(d);
  return e.type_class == H5T_FLOAT && e.size == 4;
}

// Opens a trace, checking that the file is HDF5 and has the three top-level objects.
h5::File open_trace(const fs::path& trace) {
  std::error_code ec;
  if (!fs::is_regular_file(trace, ec)) bad_trace(trace, "no such file");
  htri_t is_h5;
  {
    h5::ErrorGuard guard;
    is_h5 = H5Fis_hdf5(trace.c_str());
  }
  if (is_h5 <= 0) bad_trace(trace, "not an HDF5 file");
  h5::File file = h5::open_file(trace, false);
  for (const char* name : {"params", "grads"})
    if (!h5::link_exists(file, name) || h5::object_kind(file, name) != h5::ObjectKind::group)
      bad_trace(trace, std::string("missing group /") + name);
  if (!h5::link_exists(file, "lr") || h5::object_kind(file, "lr") != h5::ObjectKind::dataset)
    bad_trace(trace, "missing dataset /lr");
  return file;
}

}  // namespace

struct GradTraceWriter::Impl {
  fs::path path;
  h5::File file;
  std::vector<h5::Dataset> grads;
  h5::Dataset lr;
  std::int64_t steps = 0;
};

GradTraceWriter::GradTraceWriter(const fs::path& path, const nn::ParameterStore<float>& store)
    : impl_(std::make_unique<Impl>()) {
  impl_->path = path;
  if (path.has_parent_path()) fs::create_directories(path.parent_path());
  impl_->file = h5::create_file(tmp_path(path), false);
  h5::Group params = h5::create_group(impl_->file, "params");
  h5::Group grads = h5::create_group(impl_->file, "grads");
  const auto& infos = store.params();
  for (std::size_t i = 0; i < infos.size(); ++i) {
    const auto& p = infos[i];
    h5::Dataset d = h5::write_array<float>(params, p.name, std::span<const float>(store.value(i), p.size), dims_of(p));
    h5::write_attribute(d, "role", nn::to_string(p.role));
    h5::write_attribute(d, "index", static_cast<std::int64_t>(i));
    impl_->grads.push_back(h5::create_row_dataset(grads, p.name, H5T_IEEE_F32LE, dims_of(p), 1));
  }
  impl_->lr = h5::create_row_dataset(impl_->file, "lr", H5T_IEEE_F64LE, {}, 256);
}

GradTraceWriter::~GradTraceWriter() = default;

void GradTraceWriter::append(const nn::ParameterStore<float>& store, double lr) {
  for (std::size_t i = 0; i < impl_->grads.size(); ++i)
    h5::append_rows(impl_->grads[i], H5T_NATIVE_FLOAT, store.grad(i), 1);
  h5::append_rows(impl_->lr, H5T_NATIVE_DOUBLE, &lr, 1);
  ++impl_->steps;
}

std::int64_t GradTraceWriter::finish() {
  for (auto& d : impl_->grads) d.close();
  impl_->lr.close();
  impl_->file.close();
  fs::rename(tmp_path(impl_->path), impl_->path);
  return impl_->steps;
}

GradTraceInfo read_grad_trace_info(const fs::path& trace) {
  h5::File file = open_trace(trace);
  h5::Group params = h5::open_group(file, "params");
  h5::Group grads = h5::open_group(file, "grads");
  GradTraceInfo info;

  h5::Dataset lr = h5::open_dataset(file, "lr");
  const auto lr_dims = h5::dataset_dims(lr);
  const auto lr_type = h5::element_info(lr);
  if (lr_type.type_class != H5T_FLOAT || lr_type.size != 8) bad_trace(trace, "/lr must be float64");
  if (lr_dims.size() != 1) bad_trace(trace, "/lr must be 1-D [steps], is " + shape_text(lr_dims));
  info.steps = static_cast<std::int64_t>(lr_dims[0]);
  if (info.steps < 1) bad_trace(trace, "/lr is empty: the trace has no steps");
  const auto lrs = h5::read_array<double>(lr, nullptr);
  for (std::size_t k = 0; k < lrs.size(); ++k)
    if (!std::isfinite(lrs[k])) bad_trace(trace, "/lr[" + std::to_string(k) + "] is not finite");

  const auto names = h5::member_names(params);
  if (names.empty()) bad_trace(trace, "/params is empty");
  for (const auto& g : h5::member_names(grads))
    if (std::find(names.begin(), names.end(), g) == names.end())
      bad_trace(trace, "/grads/" + g + " has no initial value /params/" + g);
  std::map<std::int64_t, nn::ParamInfo> by_index;
  std::size_t with_index = 0;
  for (const auto& name : names) {
    if (h5::object_kind(params, name) != h5::ObjectKind::dataset)
      bad_trace(trace, "/params/" + name + " is not a dataset");
    h5::Dataset d = h5::open_dataset(params, name);
    if (!is_float32(d)) bad_trace(trace, "/params/" + name + " must be float32");
    nn::ParamInfo p;
    p.name = name;
    const auto dims = h5::dataset_dims(d);
    if (dims.empty()) bad_trace(trace, "/params/" + name + " is a scalar; parameters have at least one dimension");
    p.size = 1;
    for (auto v : dims) {
      p.shape.push_back(static_cast<std::int64_t>(v));
      p.size *= static_cast<std::size_t>(v);
    }
    if (!h5::has_attribute(d, "role")) bad_trace(trace, "/params/" + name + " has no `role` attribute");
    try {
      p.role = nn::param_role_from_string(h5::read_string_attribute(d, "role"));
    } catch (const std::exception& e) {
      bad_trace(trace, "/params/" + name + ": " + e.what());
    }
    const auto value = h5::read_array<float>(d, nullptr);
    if (!all_finite(value.data(), value.size())) bad_trace(trace, "/params/" + name + " has a non-finite value");

    if (!h5::link_exists(grads, name)) bad_trace(trace, "missing /grads/" + name);
    h5::Dataset g = h5::open_dataset(grads, name);
    if (!is_float32(g)) bad_trace(trace, "/grads/" + name + " must be float32");
    auto want = dims;
    want.insert(want.begin(), static_cast<hsize_t>(info.steps));
    const auto got = h5::dataset_dims(g);
    if (got != want)
      bad_trace(trace, "/grads/" + name + " has shape " + shape_text(got) +
                           ", expected [steps, ...shape] = " + shape_text(want) + " (steps from /lr)");
    if (h5::has_attribute(d, "index")) {
      const auto index = h5::read_int_attribute(d, "index");
      if (!by_index.emplace(index, p).second) bad_trace(trace, "two parameters have index " + std::to_string(index));
      ++with_index;
    }
    info.params.push_back(std::move(p));
  }
  if (with_index == info.params.size()) {
    info.params.clear();
    for (auto& [index, p] : by_index) info.params.push_back(std::move(p));
  } else if (with_index != 0) {
    bad_trace(trace, "some /params datasets have an `index` attribute and some do not");
  }
  return info;
}

std::int64_t replay_grad_trace(const config::OptimizerConfig& optimizer, const fs::path& trace, const fs::path& out) {
  const GradTraceInfo info = read_grad_trace_info(trace);
  nn::ParameterStore<float> store;
  for (const auto& p : info.params) store.add(p.name, p.shape, p.role);
  store.allocate();
  h5::File file = open_trace(trace);
  h5::Group params = h5::open_group(file, "params");
  h5::Group grads = h5::open_group(file, "grads");
  const auto lrs = h5::read_array<double>(h5::open_dataset(file, "lr"), nullptr);
  std::vector<h5::Dataset> grad_sets;
  for (std::size_t i = 0; i < info.params.size(); ++i) {
    const auto value = h5::read_array<float>(h5::open_dataset(params, info.params[i].name), nullptr);
    std::copy(value.begin(), value.end(), store.value(i));
    grad_sets.push_back(h5::open_dataset(grads, info.params[i].name));
  }

  // Same BLAS threading as the trainer, so that the replay of a recorded run is bit-exact.
  kernels::set_blas_threads(1);
  auto opt = optim::make_optimizer(optimizer, store.params());
  auto refs = optim::param_refs(store);

  h5::File result = h5::create_file(tmp_path(out), false);
  h5::Group out_params = h5::create_group(result, "params");
  std::vector<h5::Dataset> trajectory;
  for (std::size_t i = 0; i < info.params.size(); ++i) {
    const auto& p = store.params()[i];
    trajectory.push_back(h5::create_row_dataset(out_params, p.name, H5T_IEEE_F32LE, dims_of(p), 1));
    h5::write_attribute(trajectory.back(), "role", nn::to_string(p.role));
    h5::append_rows(trajectory.back(), H5T_NATIVE_FLOAT, store.value(i), 1);
  }
  for (std::int64_t t = 1; t <= info.steps; ++t) {
    for (std::size_t i = 0; i < info.params.size(); ++i) {
      float* g = store.grad(i);
      read_row(grad_sets[i], static_cast<hsize_t>(t - 1), g, info.params[i].size);
      if (!all_finite(g, info.params[i].size))
        bad_trace(trace, "/grads/" + info.params[i].name + " has a non-finite value at step " + std::to_string(t));
    }
    opt->step(refs, t, lrs[static_cast<std::size_t>(t - 1)]);
    for (std::size_t i = 0; i < info.params.size(); ++i)
      h5::append_rows(trajectory[i], H5T_NATIVE_FLOAT, store.value(i), 1);
  }
  for (auto& d : trajectory) d.close();
  out_params.close();
  result.close();
  fs::rename(tmp_path(out), out);
  return info.steps;
}

}  // namespace expt::experiments
