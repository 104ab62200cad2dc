// The signals that stop a run cleanly (docs/cli.md, docs/reliability.md): SIGINT, SIGTERM and
// SIGHUP. The handler only records the signal; the training loop (and the sweep coordinator)
// read it at the next step boundary, checkpoint and exit with 128 + the signal.
#pragma once

#include <string>

namespace expt::experiments {

// Installs the handlers for SIGINT, SIGTERM and SIGHUP. A SIGHUP that is already ignored when the
// process starts (`nohup expt ...`) stays ignored: the user asked for the run to survive a hang-up.
void install_stop_signal_handlers();

// The stop signal received so far, 0 if none.
int stop_signal_received();

// The signal as the user would name it: "SIGHUP (hang-up)", "SIGINT (Ctrl-C)", "SIGTERM". Under
// mpirun every rank sees SIGTERM whatever the user sent to mpirun (Open MPI 4.1 forwards Ctrl-C
// and a hang-up as SIGTERM and runs each rank in its own process group), so SIGTERM is then named
// with that caveat.
std::string describe_stop_signal(int signal);

}  // namespace expt::experiments
