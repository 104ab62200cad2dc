#include "experiments/serve/dashboard_server.hpp"

#include <httplib.h>

#include <csignal>
#include <cstdio>
#include <thread>

namespace expt::serve {

namespace {

// "127.0.0.1:8080" -> "127.0.0.1", "[::1]:8080" -> "::1", "localhost" -> "localhost".
std::string host_of(const std::string& header) {
  if (!header.empty() && header.front() == '[') {
    const std::size_t close = header.find(']');
    return close == std::string::npos ? header : header.substr(1, close - 1);
  }
  return header.substr(0, header.find(':'));
}

}  // namespace

bool is_loopback_host(const std::string& host) {
  return host == "localhost" || host == "::1" || host.rfind("127.", 0) == 0;
}

bool serve_until_signal(DashboardApi& api, const std::string& host, int port,
                        const std::function<void(int port)>& on_listening) {
  httplib::Server server;
  const bool loopback = is_loopback_host(host);
  server.set_payload_max_length(64 << 10);  // nothing is uploaded; a long body is refused early
  const auto answer = [&api, loopback](const httplib::Request& req, httplib::Response& res) {
    ApiResponse out;
    if (loopback && req.has_header("Host") && !is_loopback_host(host_of(req.get_header_value("Host")))) {
      out = ApiResponse{403, "application/json", R"({"error": "Host header names another machine"})"};
    } else {
      ApiRequest request{req.method, req.path, {}};
      for (const auto& [key, value] : req.params) request.params.emplace(key, value);  // first value wins
      out = api.handle(request);
    }
    // No compression: httplib would answer a browser's Accept-Encoding with brotli at its highest
    // quality, which took seconds for a 300 kB overview, and a local connection gains nothing from
    // it. The request object is httplib's own non-const one; it reads the header after we return.
    const_cast<httplib::Request&>(req).headers.erase("Accept-Encoding");
    res.status = out.status;
    res.set_header("X-Content-Type-Options", "nosniff");
    res.set_header("X-Frame-Options", "DENY");
    res.set_header("Content-Security-Policy",
                   "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'");
    res.set_header("Cache-Control", "no-store");
    res.set_content(std::move(out.body), out.content_type);
    if (out.status >= 400)
      std::fprintf(stderr, "expt serve: %d %s %s\n", out.status, req.method.c_str(), req.path.c_str());
  };
  server.Get(".*", answer);
  server.Post(".*", answer);
  server.Put(".*", answer);
  server.Patch(".*", answer);
  server.Delete(".*", answer);
  server.Options(".*", answer);

  const int bound = port == 0 ? server.bind_to_any_port(host) : (server.bind_to_port(host, port) ? port : -1);
  if (bound < 0) return false;

  // Signals are taken by sigwait in this thread; the server thread never sees them.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  for (int s : {SIGINT, SIGTERM, SIGHUP}) sigaddset(&stop_signals, s);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  std::thread listener([&server] { server.listen_after_bind(); });
  on_listening(bound);
  int received = 0;
  sigwait(&stop_signals, &received);
  server.stop();
  listener.join();
  pthread_sigmask(SIG_UNBLOCK, &stop_signals, nullptr);
  std::fprintf(stderr, "expt serve: stopped by signal %d\n", received);
  return true;
}

}  // namespace expt::serve
