#include "core/comm/sweep_channel.hpp"

#include <cmath>
#include <cstdlib>
#include <limits>
#include <nlohmann/json.hpp>

namespace expt::comm {

namespace {

constexpr int kTagRequest = 1;   // leader -> 0: ready for a trial (empty)
constexpr int kTagAssign = 2;    // 0 -> leader: "<id>\n<canonical trial yaml>"
constexpr int kTagShutdown = 3;  // 0 -> leader: no more work (empty)
constexpr int kTagResult = 4;    // leader -> 0: JSON of the outcome
constexpr int kTagProgress = 5;  // leader -> 0: JSON {step, loss, tokens_per_s} of the running trial

std::string receive_string(int source, int tag, MPI_Status* status_out) {
  MPI_Status status;
  MPI_Probe(source, tag, MPI_COMM_WORLD, &status);
  int count = 0;
  MPI_Get_count(&status, MPI_CHAR, &count);
  std::string s(static_cast<std::size_t>(count), '\0');
  MPI_Recv(s.data(), count, MPI_CHAR, status.MPI_SOURCE, status.MPI_TAG, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
  if (status_out != nullptr) *status_out = status;
  return s;
}

void send_string(const std::string& s, int dest, int tag) {
  MPI_Send(s.data(), static_cast<int>(s.size()), MPI_CHAR, dest, tag, MPI_COMM_WORLD);
}

// JSON has no NaN or infinity: a non-finite number travels as null.
nlohmann::json finite_or_null(double x) { return std::isfinite(x) ? nlohmann::json(x) : nlohmann::json(nullptr); }

MPI_Comm split_group(int world_rank, int group_size) {
  MPI_Comm group;
  MPI_Comm_split(MPI_COMM_WORLD, (world_rank - 1) / group_size, world_rank, &group);
  return group;
}

}  // namespace

void abort_job(int exit_code) {
  MPI_Abort(MPI_COMM_WORLD, exit_code);
  std::abort();  // MPI_Abort does not return; this tells the compiler so
}

SweepCoordinatorChannel::SweepCoordinatorChannel() {
  MPI_Comm none;
  MPI_Comm_split(MPI_COMM_WORLD, MPI_UNDEFINED, 0, &none);
}

bool SweepCoordinatorChannel::message_waiting() {
  int flag = 0;
  MPI_Iprobe(MPI_ANY_SOURCE, MPI_ANY_TAG, MPI_COMM_WORLD, &flag, MPI_STATUS_IGNORE);
  return flag != 0;
}

std::optional<SweepCoordinatorChannel::Message> SweepCoordinatorChannel::poll() {
  int flag = 0;
  MPI_Status status;
  MPI_Iprobe(MPI_ANY_SOURCE, MPI_ANY_TAG, MPI_COMM_WORLD, &flag, &status);
  if (!flag) return std::nullopt;
  const std::string text = receive_string(status.MPI_SOURCE, status.MPI_TAG, nullptr);
  Message m;
  m.leader = status.MPI_SOURCE;
  if (status.MPI_TAG == kTagProgress) {
    m.kind = Message::Kind::progress;
    const auto j = nlohmann::json::parse(text);
    m.progress.step = j.at("step").get<std::int64_t>();
    m.progress.loss = j.at("loss").is_null() ? std::numeric_limits<double>::quiet_NaN() : j.at("loss").get<double>();
    m.progress.tokens_per_s = j.at("tokens_per_s").get<double>();
    m.progress.step_s = j.at("step_s").get<double>();
  } else if (status.MPI_TAG == kTagResult) {
    m.kind = Message::Kind::result;
    const auto j = nlohmann::json::parse(text);
    TrialResultMessage& r = m.result;
    r.status = j.at("status").get<std::string>();
    r.final_eval_loss = j.at("final_eval_loss").is_null() ? std::numeric_limits<double>::infinity()
                                                          : j.at("final_eval_loss").get<double>();
    r.steps_done = j.at("steps_done").get<std::int64_t>();
    r.tokens_seen = j.at("tokens_seen").get<std::int64_t>();
    r.wall_s = j.at("wall_s").get<double>();
    r.message = j.at("message").get<std::string>();
    r.interrupted = j.at("interrupted").get<bool>();
    r.signal = j.at("signal").get<int>();
    r.refused = j.value("refused", false);
  } else {
    m.kind = Message::Kind::request;
  }
  return m;
}

void SweepCoordinatorChannel::assign(int leader, const TrialAssignment& trial) {
  send_string(trial.id + "\n" + trial.branch + "\n" + trial.config_yaml, leader, kTagAssign);
}

void SweepCoordinatorChannel::shut_down(int leader) { send_string("", leader, kTagShutdown); }

SweepGroupChannel::SweepGroupChannel(int world_rank, int group_size)
    : group_(split_group(world_rank, group_size)), group_comm_(group_) {}

SweepGroupChannel::~SweepGroupChannel() { MPI_Comm_free(&group_); }

std::optional<TrialAssignment> SweepGroupChannel::next_trial() {
  std::string msg;
  std::int64_t header[2] = {0, 0};  // tag, length
  if (leader()) {
    send_string("", 0, kTagRequest);
    MPI_Status status;
    msg = receive_string(0, MPI_ANY_TAG, &status);
    header[0] = status.MPI_TAG;
    header[1] = static_cast<std::int64_t>(msg.size());
  }
  MPI_Bcast(header, 2, MPI_INT64_T, 0, group_);
  if (header[0] == kTagShutdown) return std::nullopt;
  msg.resize(static_cast<std::size_t>(header[1]));
  MPI_Bcast(msg.data(), static_cast<int>(header[1]), MPI_CHAR, 0, group_);
  // "<id>\n<branch JSON line>\n<config YAML>"
  const std::size_t nl = msg.find('\n');
  const std::size_t nl2 = msg.find('\n', nl + 1);
  return TrialAssignment{msg.substr(0, nl), msg.substr(nl2 + 1), msg.substr(nl + 1, nl2 - nl - 1)};
}

void SweepGroupChannel::report_progress(const TrialProgressMessage& p) {
  const nlohmann::json j = {
      {"step", p.step}, {"loss", finite_or_null(p.loss)}, {"tokens_per_s", p.tokens_per_s}, {"step_s", p.step_s}};
  send_string(j.dump(), 0, kTagProgress);
}

void SweepGroupChannel::report_result(const TrialResultMessage& r) {
  const nlohmann::json j = {{"status", r.status},           {"final_eval_loss", finite_or_null(r.final_eval_loss)},
                            {"steps_done", r.steps_done},   {"tokens_seen", r.tokens_seen},
                            {"wall_s", r.wall_s},           {"message", r.message},
                            {"interrupted", r.interrupted}, {"signal", r.signal},
                            {"refused", r.refused}};
  send_string(j.dump(), 0, kTagResult);
}

namespace {
MPI_Comm duplicate_world() {
  MPI_Comm c = MPI_COMM_NULL;
  MPI_Comm_dup(MPI_COMM_WORLD, &c);
  return c;
}
}  // namespace

WorkerChannel::WorkerChannel() : world_(duplicate_world()), world_comm_(world_) {}

WorkerChannel::~WorkerChannel() { MPI_Comm_free(&world_); }

std::optional<TrialAssignment> WorkerChannel::share(const std::optional<TrialAssignment>& trial) {
  std::string msg;
  std::int64_t header[2] = {0, 0};  // has a trial, length
  if (leader() && trial) {
    msg = trial->id + "\n" + trial->config_yaml;
    header[0] = 1;
    header[1] = static_cast<std::int64_t>(msg.size());
  }
  MPI_Bcast(header, 2, MPI_INT64_T, 0, world_);
  if (header[0] == 0) return std::nullopt;
  msg.resize(static_cast<std::size_t>(header[1]));
  MPI_Bcast(msg.data(), static_cast<int>(header[1]), MPI_CHAR, 0, world_);
  const std::size_t nl = msg.find('\n');
  return TrialAssignment{msg.substr(0, nl), msg.substr(nl + 1)};
}

}  // namespace expt::comm
