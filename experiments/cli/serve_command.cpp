#include "experiments/cli/serve_command.hpp"

#include <CLI/CLI.hpp>
#include <cstdio>
#include <memory>
#include <stdexcept>

#include "experiments/cli/exit_codes.hpp"
#include "experiments/serve/dashboard_api.hpp"
#include "experiments/serve/dashboard_server.hpp"

namespace expt::experiments {

void add_serve_options(CLI::App& command, ServeArgs& args) {
  command.add_option("dirs", args.dirs, "Sweep or trial directories")->required();
  command.add_option("--host", args.host, "Address to listen on (default 127.0.0.1: this machine only)");
  command.add_option("--port", args.port, "Port (default 8080; 0 picks a free one)")->check(CLI::Range(0, 65535));
}

int serve_command(const ServeArgs& args) {
  std::vector<std::unique_ptr<serve::ServedDirectory>> dirs;
  bool bad = false;
  for (const std::string& d : args.dirs) {
    try {
      dirs.push_back(std::make_unique<serve::ServedDirectory>(d));
    } catch (const std::invalid_argument& e) {
      std::fprintf(stderr, "expt serve: %s\n", e.what());
      bad = true;
    }
  }
  if (bad) return kExitUsage;
  if (!serve::is_loopback_host(args.host))
    std::fprintf(stderr,
                 "expt serve: warning: --host %s serves the dashboard to every machine that can reach this one, "
                 "without password or encryption: anyone who connects can read these directories' results\n",
                 args.host.c_str());
  serve::DashboardApi api(std::move(dirs));
  const bool served = serve::serve_until_signal(api, args.host, args.port, [&](int port) {
    for (const auto& d : api.dirs())
      std::fprintf(stderr, "expt serve: %s (%s)\n", d->path().c_str(),
                   d->kind() == serve::ServedDirectory::Kind::sweep ? "sweep" : "trial");
    const std::string shown = args.host.find(':') != std::string::npos ? "[" + args.host + "]" : args.host;
    std::printf("expt serve: dashboard at http://%s:%d/ (Ctrl-C stops)\n", shown.c_str(), port);
    std::fflush(stdout);
  });
  if (!served) {
    std::fprintf(stderr, "expt serve: cannot listen on %s port %d (in use, or not an address of this machine)\n",
                 args.host.c_str(), args.port);
    return kExitFailed;
  }
  return kExitOk;
}

}  // namespace expt::experiments
