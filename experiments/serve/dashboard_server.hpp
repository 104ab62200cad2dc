// The HTTP side of `expt serve` (docs/dashboard.md): cpp-httplib (Debian's libcpp-httplib-dev)
// parses requests and answers them from DashboardApi; every method but GET and HEAD gets 405.
// Bound to a loopback address, it also refuses requests whose Host header names another machine,
// so a web page elsewhere cannot reach it through a DNS name rebound to 127.0.0.1.
#pragma once

#include <functional>
#include <string>

#include "experiments/serve/dashboard_api.hpp"

namespace expt::serve {

// Whether `host` is a loopback address or name (127.0.0.0/8, ::1, localhost).
bool is_loopback_host(const std::string& host);

// Binds host:port (port 0: a free port) and answers requests until SIGINT, SIGTERM or SIGHUP.
// `on_listening(port)` runs once the socket is bound, before the first request. Returns false
// (nothing served) when the address cannot be bound.
bool serve_until_signal(DashboardApi& api, const std::string& host, int port,
                        const std::function<void(int port)>& on_listening);

}  // namespace expt::serve
