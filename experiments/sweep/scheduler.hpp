// The sweep runner's bookkeeping, independent of MPI: which trials exist, their states, what to
// hand out next (longest first), coordinate-descent rounds re-planned as cells finish, the
// confirmation trials (search.confirm) added once a cell's search is finished, and the
// files the coordinator writes (status.json, sweep.h5). experiments/sweep/runner.cpp drives it
// either in-process (one rank) or from world rank 0 of an mpirun (docs/sweeps.md "Running").
//
// Everything is rebuilt from the trial directories on start, so rerunning the same command
// resumes: finished trials (COMPLETED, DIVERGED, or FAILED max_attempts times) are not run again,
// unfinished ones resume from their last committed checkpoint, failed ones are retried.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "core/io/results.hpp"
#include "experiments/study/plan.hpp"

namespace expt::experiments {

struct TrialRecord {
  PlannedTrial trial;
  // pending | running | COMPLETED | DIVERGED | FAILED | PRUNED (search.halving: its point lost a
  // rung, so it never runs; derived from the finished trials, never stored)
  std::string state = "pending";
  int attempts = 0;  // starts so far (attempts.jsonl "start" lines) but pauses at a halving rung
  bool has_summary = false;
  io::TrialSummary summary;  // of the last attempt that ended
  int group = -1;            // running: the rank group (0 in one-rank mode)
  double started_s = 0;      // running: seconds since the sweep started
  // running: the last progress report of the trial's group leader (live_step < 0: none yet)
  std::int64_t live_step = -1;
  double live_loss = 0;
  double live_tokens_per_s = 0;
  double live_step_s = 0;  // measured seconds per step of the running attempt (0: not yet)
};

class Scheduler {
 public:
  // Reads <dir>/trials/*/ (result.h5, attempts.jsonl) and plans the work left. Temporary files of
  // status.json, sweep.h5, state.h5 and the round records get `tmp_suffix`; workers sharing a
  // directory each pass their own (".tmp.<worker id>").
  Scheduler(const Planner& planner, std::filesystem::path dir, std::string tmp_suffix = ".tmp");

  // The pending trial with the highest cost (ties: planned first), now running on `group`;
  // nullopt when nothing can start now (all done, or a coordinate-descent round waits on trials
  // still running).
  // A branch (PlannedTrial::trunk_key) waits while its trunk runs (with search.halving: while its
  // trunk is not finished) and has not yet committed the branch's fork point; with search.halving
  // a trial whose rung is not decided waits, and a trunk waiting at its rung's fork point is not
  // handed out (a live one is, with PlannedTrial::stop_at); handed out, it carries its trunk's id
  // (PlannedTrial::trunk_id) when its trunk is known, whatever the trunk's state (the trainer starts from scratch
  // without a fork point).
  std::optional<PlannedTrial> next(int group);
  // Records the end of a running trial's attempt; a FAILED trial with attempts left and an
  // interrupted one go back to pending, unless `retryable` is false (a refusal that another attempt
  // would meet again, e.g. the memory pre-flight's: FAILED for good in this run). Re-plans the
  // trial's cell (coordinate descent) when its round has no trial left pending or running.
  void finished(const std::string& id, const io::TrialSummary& summary, bool interrupted, bool retryable = true);
  // A progress report of a running trial (ignored when the trial is not running); step_s: measured
  // seconds per step (0 when not measured yet).
  void progress(const std::string& id, std::int64_t step, double loss, double tokens_per_s, double step_s = 0);
  // `expt worker`: a pending trial that another worker holds the lease of shows as running.
  void running_elsewhere(const std::string& id);
  // The trial is finished for good on disk now (another worker may have finished it since this
  // scheduler read the directory).
  bool done_on_disk(const std::string& id) const { return is_done(inspect(id)); }

  bool all_done() const;
  std::size_t running() const;

  // The trial directory of an id.
  std::filesystem::path trial_dir(const std::string& id) const { return dir_ / "trials" / id; }
  const std::vector<TrialRecord>& records() const { return records_; }
  const std::map<std::size_t, CdRound>& cd_rounds() const { return rounds_; }
  // search.halving: the decisions the finished trials make (empty without halving).
  const HalvingPlan& halving() const { return halving_; }
  // What a trial is in WSD branching and halving, for `expt status`: "trunk", "trunk, paused at
  // step c (rung x1)", "branch of <id> from step c", "pruned at rung x1", "waits for rung x1".
  std::string role(const TrialRecord& r) const;
  // search.confirm: the confirmation of every cell (not ready while its search runs).
  const std::map<std::size_t, Confirmation>& confirmations() const { return confirmations_; }
  // Infeasible points dropped so far (grid/Halton: all; coordinate descent: as rounds are planned).
  std::vector<DroppedPoint> dropped() const;

  // status.json: counts by state and one row per trial (step, loss, tokens/s), CD rounds.
  std::string status_json(double elapsed_s) const;
  // Writes status.json, and sweep.h5 plus coordinator/state.h5 (tmp + rename).
  void write_status(double elapsed_s) const;
  void write_index() const;
  // coordinator/state.h5: the coordinate-descent table, one row per (cell, round) planned so far
  // (docs/results-format.md); tmp + rename. Rounds are a pure function of the finished trials, so a
  // resumed sweep rewrites the same rows.
  void write_state() const;
  // The end-of-sweep report: counts, failures with their paths, dropped points, CD outcomes.
  std::string summary_text() const;

 private:
  struct OnDisk {
    bool has_summary = false;
    io::TrialSummary summary;
    int attempts = 0;
  };
  OnDisk inspect(const std::string& id) const;
  bool is_done(const OnDisk& d) const;
  void add(const PlannedTrial& t);
  void plan_cell(std::size_t cell);
  // The longest trial that shares r's trunk_key, when it is longer than r (r is its branch).
  const TrialRecord* trunk_of(const TrialRecord& r) const;
  // r waits for its trunk's fork point (see next()).
  bool waits_for_trunk(const TrialRecord& r) const;
  // search.confirm: adds the cell's confirmation trials once its search is finished.
  void plan_confirmation(std::size_t cell);
  // search.halving: recomputes the decisions from store_ and marks pruned pending trials PRUNED.
  void refresh_halving();
  // store_ with every PRUNED trial as done at +inf: what coordinate descent and search.confirm
  // plan on (a pruned point never runs, so it never becomes a centre or a confirmed point).
  ResultStore planning_store() const;
  // A trunk waiting at its halving rung: it has committed the step it was told to stop at.
  bool paused_at_rung(const TrialRecord& r) const;
  // coordinator/rounds/<cell>.round-<n>.json, written once (core/io/atomic_file.hpp).
  void record_round(const CdRound& round) const;

  const Planner& planner_;
  std::filesystem::path dir_;
  std::string tmp_suffix_;
  std::vector<TrialRecord> records_;
  std::map<std::string, std::size_t> index_;
  std::map<std::string, std::size_t> longest_;         // trunk_key -> the record of its longest trial
  std::map<std::string, int> trials_per_key_;          // trunk_key -> how many records share it
  ResultStore store_;                                  // done trials -> final loss (+inf diverged / failed for good)
  std::map<std::size_t, CdRound> rounds_;              // coordinate descent: current round per cell
  std::map<std::size_t, Confirmation> confirmations_;  // search.confirm: per cell
  HalvingPlan halving_;                                // search.halving: from store_
  // coordinate descent: every round planned, by (cell, round number); the latest planning wins
  std::map<std::pair<std::size_t, int>, CdRound> round_history_;
  std::chrono::steady_clock::time_point t0_ = std::chrono::steady_clock::now();
};

// sweep.resolved.yaml: the study with every default filled in, per cell its resolved base config
// and the expanded axis values.
std::string resolved_study_yaml(const Planner& planner);
// The same without the seeds, search.confirm and the `sweep:` section (ranks_per_trial, max_attempts,
// collective_timeout_s): the points the study asks about, hashed into its identity
// (experiments/sweep/study_identity.hpp).
std::string study_identity_yaml(const Planner& planner);

}  // namespace expt::experiments
