#include "experiments/trial/stop_signal.hpp"

#include <fmt/format.h>

#include <atomic>
#include <csignal>

#include "core/comm/communicator.hpp"

namespace expt::experiments {

namespace {

std::atomic<int> g_stop_signal{0};

extern "C" void on_stop_signal(int sig) { g_stop_signal.store(sig); }

}  // namespace

void install_stop_signal_handlers() {
  struct sigaction sa {};
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  struct sigaction hup {};
  sigaction(SIGHUP, nullptr, &hup);
  if (hup.sa_handler != SIG_IGN) sigaction(SIGHUP, &sa, nullptr);
}

int stop_signal_received() { return g_stop_signal.load(); }

std::string describe_stop_signal(int signal) {
  switch (signal) {
    case SIGHUP:
      return "SIGHUP (hang-up)";
    case SIGINT:
      return "SIGINT (Ctrl-C)";
    case SIGTERM:
      return comm::launched_by_mpi() ? "SIGTERM (mpirun forwards Ctrl-C and hang-up as SIGTERM)" : "SIGTERM";
    default:
      return fmt::format("signal {}", signal);
  }
}

}  // namespace expt::experiments
