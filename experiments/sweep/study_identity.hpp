// One study per sweep directory (docs/sweeps.md "One study per directory"). <out>/study.json records
// the identity of every study the directory holds, written when the sweep is created:
//
//   {"studies": [{"name": "a", "identity": "<16 hex>", "index": "."},
//                {"name": "b", "identity": "<16 hex>", "index": "studies/b"}]}
//
// The identity is the FNV-1a hash of the points the study asks about (study_identity_yaml: the
// resolved study without its seeds, search.confirm and its `sweep:` run settings). The same study
// file with `--set` overrides of the seeds or search.confirm (more repetitions of the same points)
// or of the run settings is the same
// study and extends or resumes the sweep in place; one that changes the strategy, the search space,
// the scales or the base config is another study.
// The first study owns <out> (sweep.h5, status.json, ...). A different study is refused unless it is
// added explicitly (`--add-to-existing`): its index files then live in <out>/studies/<name>/, whose
// `trials` is a symbolic link to <out>/trials, so its trials sit next to the first study's (a trial
// both plan is trained once) and `expt analyze` / `expt status` read either index unchanged.
#pragma once

#include <filesystem>
#include <stdexcept>
#include <string>

#include "experiments/study/plan.hpp"
#include "experiments/study/study.hpp"

namespace expt::experiments {

// A different study on a directory that holds a sweep, without --add-to-existing: a usage error
// (exit code 2), raised before anything in the directory is changed.
class StudyMismatch : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// The identity of a planned study (16 hex digits).
std::string study_identity(const Planner& planner);

// Checks (and on first use records) the study of sweep directory `dir`; returns the directory its
// index files go to (`dir` itself, or dir/studies/<name> for an added study). The caller holds the
// directory's .sweep.lock. A directory written before study.json existed is adopted when its
// sweep.resolved.yaml names this study. Throws StudyMismatch for a different study unless
// `add_to_existing`.
std::filesystem::path claim_sweep_directory(const Study& study, const Planner& planner,
                                            const std::filesystem::path& dir, bool add_to_existing);

}  // namespace expt::experiments
