#include "experiments/cli/data_commands.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cstdio>
#include <exception>
#include <memory>
#include <ostream>
#include <span>
#include <vector>

#include "core/data/task.hpp"
#include "core/data/token_text.hpp"
#include "core/io/atomic_file.hpp"
#include "core/io/hdf5.hpp"
#include "experiments/cli/exit_codes.hpp"

namespace expt::experiments {

namespace {

namespace h5 = io::h5;

std::string join(const std::vector<int>& values) {
  std::string s;
  for (std::size_t i = 0; i < values.size(); ++i) s += fmt::format("{}{}", i ? " " : "", values[i]);
  return s;
}

// One sequence of a batch, decoded: the inputs, then either the whole target sequence (every
// position labelled: language modelling) or the labelled positions with their label.
void print_sequence(std::ostream& out, const data::TokenPrinter& printer, const data::Batch& b, int row) {
  const auto T = static_cast<std::size_t>(b.length);
  const std::span<const std::int32_t> inputs(b.inputs.data() + row * T, T);
  const std::span<const std::int32_t> targets(b.targets.data() + row * T, T);
  out << "  input : " << printer.sequence(inputs) << "\n";
  const auto labelled = static_cast<std::size_t>(
      std::count_if(targets.begin(), targets.end(), [](std::int32_t t) { return t != data::kIgnoreIndex; }));
  if (labelled == T) {
    out << "  target: " << printer.sequence(targets) << "\n";
    return;
  }
  out << "  labels:";
  if (labelled == 0) out << " (none)";
  for (std::size_t t = 0; t < T; ++t)
    if (targets[t] != data::kIgnoreIndex)
      out << fmt::format(" @{} {} -> {}", t, printer.token(inputs[t]), printer.token(targets[t]));
  out << "\n";
}

// Rows [0, count) of the run's training sequences: step 1's global batch, then step 2's, ...
void train_rows(const data::Task& task, const config::TrialConfig& cfg, int count, data::Batch& rows,
                std::vector<std::int64_t>& steps, std::vector<std::int64_t>& indices) {
  const int B = cfg.train.batch_size;
  rows.resize(count, task.train_length());
  steps.clear();
  indices.clear();
  data::Batch batch;
  for (int done = 0; done < count;) {
    const std::int64_t step = 1 + done / B;
    const int take = std::min(B, count - done);
    task.train_batch(cfg.seed, step, 0, take, batch);
    std::copy(batch.inputs.begin(), batch.inputs.end(),
              rows.inputs.begin() + static_cast<std::ptrdiff_t>(done) * rows.length);
    std::copy(batch.targets.begin(), batch.targets.end(),
              rows.targets.begin() + static_cast<std::ptrdiff_t>(done) * rows.length);
    for (int i = 0; i < take; ++i) {
      steps.push_back(step);
      indices.push_back(i);
    }
    done += take;
  }
}

void write_int32_matrix(const h5::H5Handle& parent, const std::string& name, const std::vector<std::int32_t>& data,
                        int rows, int cols) {
  h5::ErrorGuard guard;
  const std::string where = parent.where() + "/" + name;
  const hsize_t dims[2] = {static_cast<hsize_t>(rows), static_cast<hsize_t>(cols)};
  h5::Dataspace space(h5::check_id(H5Screate_simple(2, dims, nullptr), "create dataspace for " + where), H5Sclose,
                      where);
  h5::Dataset dataset(h5::check_id(H5Dcreate2(parent.id(), name.c_str(), H5T_STD_I32LE, space.id(), H5P_DEFAULT,
                                              H5P_DEFAULT, H5P_DEFAULT),
                                   "create dataset " + where),
                      H5Dclose, where);
  h5::check_status(H5Dwrite(dataset.id(), H5T_NATIVE_INT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, data.data()),
                   "write " + where);
  dataset.close();
}

int report_error(const std::exception& e) {
  std::fprintf(stderr, "expt: error: %s\n", e.what());
  return kExitFailed;
}

}  // namespace

int data_preview(const config::TrialConfig& cfg, int count, std::ostream& out) {
  if (count < 0) {
    std::fprintf(stderr, "expt: the count of sequences to preview must be >= 0, got %d\n", count);
    return kExitUsage;
  }
  try {
    const auto task = data::make_task(cfg.task);
    const data::TokenPrinter printer(*task);
    out << fmt::format("task {}: vocab_size {}, train length {}, eval lengths {}, ignore index {}, seed {}\n",
                       task->name(), task->vocab_size(), task->train_length(), join(task->eval_lengths()),
                       data::kIgnoreIndex, cfg.seed);
    data::Batch rows;
    std::vector<std::int64_t> steps, indices;
    train_rows(*task, cfg, count, rows, steps, indices);
    for (int r = 0; r < count; ++r) {
      out << fmt::format("train step {}, sequence {} (length {}):\n", steps[r], indices[r], rows.length);
      print_sequence(out, printer, rows, r);
    }
    data::Batch batch;
    for (int L : task->eval_lengths()) {
      task->eval_batch(cfg.seed, L, 0, 1, batch);
      out << fmt::format("eval length {}, sequence 0:\n", L);
      print_sequence(out, printer, batch, 0);
    }
    return kExitOk;
  } catch (const std::exception& e) {
    return report_error(e);
  }
}

int data_dump(const config::TrialConfig& cfg, const std::string& split, int count, const std::filesystem::path& out) {
  if (split != "train" && split != "eval") {
    std::fprintf(stderr, "expt: --split must be train or eval, got '%s'\n", split.c_str());
    return kExitUsage;
  }
  if (count < 1) {
    std::fprintf(stderr, "expt: --count must be >= 1, got %d\n", count);
    return kExitUsage;
  }
  const std::filesystem::path tmp = out.string() + ".tmp";
  try {
    const auto task = data::make_task(cfg.task);
    const std::vector<int> lengths = task->eval_lengths();

    // The rows at the training length (train: the run's batches; eval: eval sequences 0..N-1).
    data::Batch rows;
    std::vector<std::int64_t> steps, indices;
    if (split == "train") {
      train_rows(*task, cfg, count, rows, steps, indices);
    } else {
      task->eval_batch(cfg.seed, task->train_length(), 0, count, rows);
      steps.assign(static_cast<std::size_t>(count), -1);
      for (int i = 0; i < count; ++i) indices.push_back(i);
    }

    if (out.has_parent_path()) std::filesystem::create_directories(out.parent_path());
    {
      h5::File file = h5::create_file(tmp, false);
      write_int32_matrix(file, "inputs", rows.inputs, rows.batch, rows.length);
      write_int32_matrix(file, "targets", rows.targets, rows.batch, rows.length);
      h5::write_array<std::int64_t>(file, "step", steps, {static_cast<hsize_t>(count)});
      h5::write_array<std::int64_t>(file, "index", indices, {static_cast<hsize_t>(count)});
      if (split == "eval") {
        data::Batch batch;
        for (int L : lengths) {
          task->eval_batch(cfg.seed, L, 0, count, batch);
          const h5::Group group = h5::create_group(file, fmt::format("eval/{}", L));
          write_int32_matrix(group, "inputs", batch.inputs, batch.batch, batch.length);
          write_int32_matrix(group, "targets", batch.targets, batch.batch, batch.length);
        }
      }
      const std::vector<std::int64_t> eval_lengths(lengths.begin(), lengths.end());
      h5::write_attribute(file, "task", std::string_view(task->name()));
      h5::write_attribute(file, "split", std::string_view(split));
      h5::write_attribute(file, "seed", static_cast<std::int64_t>(cfg.seed));
      h5::write_attribute(file, "vocab_size", static_cast<std::int64_t>(task->vocab_size()));
      h5::write_attribute(file, "ignore_index", static_cast<std::int64_t>(data::kIgnoreIndex));
      h5::write_attribute(file, "train_length", static_cast<std::int64_t>(task->train_length()));
      h5::write_attribute(file, "length", static_cast<std::int64_t>(rows.length));
      h5::write_attribute(file, "eval_lengths", std::span<const std::int64_t>(eval_lengths));
      h5::write_attribute(file, "batch_size", static_cast<std::int64_t>(cfg.train.batch_size));
      h5::write_attribute(file, "count", static_cast<std::int64_t>(count));
      file.close();
    }
    io::fsync_file(tmp);
    io::rename_atomic(tmp, out);
    return kExitOk;
  } catch (const std::exception& e) {
    std::error_code ec;
    std::filesystem::remove(tmp, ec);
    return report_error(e);
  }
}

}  // namespace expt::experiments
