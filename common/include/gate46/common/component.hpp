// The contract every part of gate46d implements (dns, socks, relay, firewall, later icmp).
// The daemon builds them through its registry (gate46/gateway/component_registry.hpp).
//
// Life of a component, all calls made on the daemon's control thread:
//   factory(context)  -> constructed, nothing opened yet
//   start()           -> listeners, rules and sessions running on the worker contexts;
//                        throws if it cannot (the daemon then stops what already started)
//   started()         -> completes once what start() began is in place (READY after it)
//   reconfigure(cfg)  -> zero or more times, on SIGHUP, with a whole new validated snapshot;
//                        applies the live keys and leaves the others as they were
//   stop(deadline)    -> stops accepting new work, lets existing work finish until deadline,
//                        then closes what remains; completes when nothing of it still runs
//   counters()        -> any time after construction; a consistent-enough snapshot
//   flows()           -> the same, for the flows relayed now
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include "gate46/common/config.hpp"
#include "gate46/common/worker_pool.hpp"

namespace gate46 {

struct counter {
  std::string name;  // snake_case, unique within the component ("queries_refused")
  std::uint64_t value = 0;
  friend bool operator==(const counter&, const counter&) = default;
};

// A flow a component is relaying now, as `gate46ctl flows` shows it.
struct live_flow {
  std::string component;         // "relay" (captured) or "socks"
  std::string client;            // the client's address and port
  std::string destination;       // what the client asked for: a fake address and port, or a SOCKS target
  std::string name;              // the name behind it; empty for a SOCKS target given as an address
  std::string target;            // the real address and port the gateway connected to
  std::uint64_t bytes_up = 0;    // client -> target
  std::uint64_t bytes_down = 0;  // target -> client
  std::uint64_t age_ms = 0;
  friend bool operator==(const live_flow&, const live_flow&) = default;
};

class component {
 public:
  component() = default;
  component(const component&) = delete;
  component& operator=(const component&) = delete;
  virtual ~component() = default;

  [[nodiscard]] virtual std::string_view name() const noexcept = 0;
  virtual void start() = 0;
  virtual void reconfigure(const config& cfg) = 0;
  virtual boost::asio::awaitable<void> stop(std::chrono::steady_clock::time_point deadline) = 0;
  // Completes once the component serves everything start() began: listeners that follow the
  // address watcher are open on the addresses of its first dump. The daemon says READY to
  // systemd only after every component's started(). Called on the control thread.
  virtual boost::asio::awaitable<void> started() { co_return; }
  // Thread-safe.
  [[nodiscard]] virtual std::vector<counter> counters() const = 0;
  // The flows it relays now (none for components that relay nothing). Thread-safe.
  [[nodiscard]] virtual std::vector<live_flow> flows() const { return {}; }
};

// What a factory gets. The references outlive the component.
struct component_context {
  const config& initial_config;
  worker_pool& workers;
  boost::asio::any_io_executor control;  // the daemon's control thread
};

}  // namespace gate46
