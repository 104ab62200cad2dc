// A sweep's live status as its coordinator last wrote it (<dir>/status.json, docs/sweeps.md
// "Files written"): counts by state, one row per trial (state, step, loss, tokens/s, attempts),
// coordinate-descent rounds. `expt status` prints it as a table and `expt serve` shows it in the
// dashboard; both read it through this function so they always agree.
#pragma once

#include <filesystem>
#include <nlohmann/json.hpp>

namespace expt::experiments {

// Throws std::runtime_error "<dir>/status.json not found (is <dir> a sweep directory?)" when it is
// missing, and "cannot read <dir>/status.json: <why>" when it does not parse or lacks `counts` or
// `trials` (the coordinator replaces it by rename, so a reader never sees half a file).
nlohmann::json read_sweep_status(const std::filesystem::path& dir);

}  // namespace expt::experiments
