// `expt serve DIR... [--host 127.0.0.1] [--port 8080]`: the live dashboard of sweep or trial
// directories in a browser (docs/dashboard.md; the server is experiments/serve/). Exit codes: 0
// stopped by Ctrl-C / SIGTERM / SIGHUP, 1 the address cannot be bound, 2 a bad directory or usage.
#pragma once

#include <string>
#include <vector>

namespace CLI {
class App;
}

namespace expt::experiments {

struct ServeArgs {
  std::vector<std::string> dirs;
  std::string host = "127.0.0.1";
  int port = 8080;
};

void add_serve_options(CLI::App& command, ServeArgs& args);
int serve_command(const ServeArgs& args);

}  // namespace expt::experiments
