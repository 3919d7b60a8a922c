// nginx as a test peer, and gate46d's counters read back from its log.
//
// web_server runs nginx inside a namespace (as root, so workers read the test's private
// directory), serving `<dir>/www` on the given addresses, with everything it writes kept in
// `dir`. Its access log has one line per request, "remote_addr server_addr uri status": which
// of its addresses a request came to, and from where (the family a flow really took).
//
// Thread-safety: none needed; objects belong to one test. Declare it after the netns it runs in.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "gate46/testing/netns.hpp"
#include "gate46/testing/process.hpp"

namespace gate46::testing {

struct web_server_options {
  // One "listen" each, nginx syntax: "203.0.113.2:80", "[2001:db8:2::2]:80".
  std::vector<std::string> listen;
  // Inside the server block, after root: locations and the like ("@DIR@" is the directory).
  std::string server_extra;
  // Inside the http block.
  std::string http_extra;
};

class web_server {
 public:
  // Writes the config, starts nginx and waits (bounded) until it answers on every listen
  // address with the file `probe` (relative to www/, created empty if missing). Throws
  // std::runtime_error with nginx's logs if it does not come up.
  web_server(const netns& ns, const std::filesystem::path& dir, web_server_options options,
             const std::string& probe = "probe.txt");
  web_server(const web_server&) = delete;
  web_server& operator=(const web_server&) = delete;

  [[nodiscard]] std::filesystem::path root() const { return dir_ / "www"; }
  [[nodiscard]] std::string access_log() const;
  [[nodiscard]] std::string error_log() const;
  // The access log lines since start (probes excluded), once there are `expected` of them:
  // nginx writes a line after the response has gone, so it may trail the client's exit a
  // little (bounded wait; fewer lines come back if they never appear).
  [[nodiscard]] std::vector<std::string> requests_seen(std::size_t expected) const;

 private:
  std::filesystem::path dir_;
  std::string probe_uri_;  // "/probe.txt?gate46-probe": never counted as a request
  std::size_t access_mark_ = 0;
  process nginx_;
};

// "http://HOST[:PORT]PATH", with an IPv6 literal in brackets.
std::string url(std::string_view host, std::string_view path = "/", int port = 80);

// The counters of `component` from gate46d's "component NAME counters: k=v ..." log line;
// empty when there is none.
std::map<std::string, std::uint64_t> component_counters(const std::string& log, std::string_view component);

}  // namespace gate46::testing
