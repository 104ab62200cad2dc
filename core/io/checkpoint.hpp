// Checkpoints on disk: <trial_dir>/checkpoints/step-<n>/state.h5 + COMMIT.
//
// A checkpoint is valid only when its COMMIT marker exists (written last, after state.h5 has been
// fsynced and renamed into place) and names the step of its folder. Everything else found under
// checkpoints/ is incomplete: quarantine_incomplete() moves it to <trial_dir>/quarantine/ (never
// deletes it). state.h5 holds every StateDict entry as a dataset at its key path ("optimizer/m/0"
// becomes dataset /optimizer/m/0), so h5py can browse a checkpoint.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <vector>

#include "core/util/state_dict.hpp"

namespace expt::io {

class CheckpointStore {
 public:
  // dir is <trial_dir>/checkpoints; it is created by the first save().
  explicit CheckpointStore(std::filesystem::path dir);

  // Writes step-<step>/state.h5 (through state.h5.tmp, fsync, rename), then COMMIT (containing the
  // step) last, fsyncing the directories. Saving a step that exists replaces it: its COMMIT is
  // removed first, so a crash in between leaves it uncommitted rather than mixed. Then keeps the
  // newest `keep` (>= 1) committed checkpoints, deleting older committed ones (COMMIT first).
  // Keys must be non-empty '/'-separated paths without empty, "." or ".." components, and no key
  // may be a prefix path of another ("a" and "a/b"); std::invalid_argument otherwise.
  void save(std::int64_t step, const StateDict& state, int keep = 2);

  // Newest step whose folder has a COMMIT naming that step.
  std::optional<std::int64_t> latest_committed() const;
  // Whether step-<step> has a COMMIT naming that step.
  bool committed(std::int64_t step) const;

  // Exact round trip of every entry (bits, types, shapes). Throws std::runtime_error when the step
  // is not committed or state.h5 is damaged.
  StateDict load(std::int64_t step) const;

  // Folders without a valid COMMIT, or whose state.h5 will not open, are moved to
  // <trial_dir>/quarantine/<name>-<UTC timestamp>; returns the new paths.
  std::vector<std::filesystem::path> quarantine_incomplete();

  const std::filesystem::path& dir() const { return dir_; }

 private:
  std::filesystem::path dir_;
};

}  // namespace expt::io
