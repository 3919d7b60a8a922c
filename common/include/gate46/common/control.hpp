// The control socket's messages (control.socket, a Unix stream socket): gate46ctl asks, gate46d
// answers, one exchange per connection.
//
// Framing: the request is one line of JSON ending in '\n', at most max_request_bytes; the reply
// is one JSON document, after which the daemon closes the connection (so a reply needs no
// length and may be as long as the flow table). Every message carries "schema": 1; a peer
// speaking another schema gets a clear error, never a half-understood answer.
//
//   request   {"schema":1,"command":"status"|"flows"|"stats"}
//   reply     {"schema":1,"status":{...}} | {"schema":1,"flows":[...]} | {"schema":1,"stats":{...}}
//             | {"schema":1,"error":"why"}
//
// Both sides decode what the other sent with the functions below, which throw control_error for
// anything malformed (wrong types, missing keys, out-of-range numbers, oversize input) and never
// anything else. Pure functions: no I/O, any thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "gate46/common/component.hpp"

namespace gate46::control {

inline constexpr int schema = 1;
// A request is a command word in a small JSON object: anything longer is not a request.
inline constexpr std::size_t max_request_bytes = 4096;
// A reply is bounded too, so a client cannot be made to buffer without end: 60,000 flows of
// about 250 bytes each fit (more than 65,536 descriptors allow).
inline constexpr std::size_t max_reply_bytes = std::size_t{16} * 1024 * 1024;

class control_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

enum class command : std::uint8_t { status, flows, stats };
[[nodiscard]] std::string_view to_string(command c) noexcept;

struct request {
  control::command command = command::status;
  friend bool operator==(const request&, const request&) = default;
};

struct status_reply {
  std::string version;
  std::int64_t pid = 0;
  std::string user;         // the user gate46d runs as now
  std::string config_path;  // the file it reads on SIGHUP
  std::uint64_t uptime_seconds = 0;
  std::uint64_t threads = 0;
  std::vector<std::string> components;  // running, in start order
  std::uint64_t reloads_applied = 0;
  std::uint64_t reloads_rejected = 0;
  friend bool operator==(const status_reply&, const status_reply&) = default;
};

// A flow being relayed now (component.hpp's live_flow).
using flow_entry = live_flow;

struct counter_group {
  std::string owner;  // "daemon" or a component's name
  std::vector<counter> counters;
  friend bool operator==(const counter_group&, const counter_group&) = default;
};

// One fake pool's pressure, from the mapping store.
struct pool_pressure {
  std::string prefix;
  std::uint64_t size = 0;
  std::uint64_t used = 0;
  std::uint64_t eligible = 0;  // expired, not held, not pinned: recyclable now
  std::uint64_t allocation_failures = 0;
  friend bool operator==(const pool_pressure&, const pool_pressure&) = default;
};

struct stats_reply {
  std::vector<counter_group> groups;
  std::vector<pool_pressure> pools;  // empty when no running component opened the store
  friend bool operator==(const stats_reply&, const stats_reply&) = default;
};

struct error_reply {
  std::string message;
  friend bool operator==(const error_reply&, const error_reply&) = default;
};

using reply = std::variant<error_reply, status_reply, std::vector<flow_entry>, stats_reply>;

// One line, '\n' included.
[[nodiscard]] std::string encode_request(const request& r);
// `line` without or with its '\n'.
[[nodiscard]] request decode_request(std::string_view line);

[[nodiscard]] std::string encode_reply(const reply& r);
[[nodiscard]] reply decode_reply(std::string_view text);

}  // namespace gate46::control
