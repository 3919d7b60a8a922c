// gate46d's life: load the config, start the enabled components on the worker threads, follow
// SIGHUP (reload) and SIGTERM/SIGINT (drain and stop) until told to stop. Under systemd
// (Type=notify) it says READY=1 once every component's listeners and rules are in place,
// RELOADING=1 / READY=1 around a reload, STOPPING=1 when it starts to drain, and pings the
// watchdog from its control loop while every worker thread answers.
//
// Thread-safety: run() is called once, from the thread that then becomes the control thread.
// request_reload() and request_stop() may be called from any thread (signals use them too).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>

#include "gate46/common/component.hpp"
#include "gate46/common/config.hpp"
#include "gate46/common/control.hpp"
#include "gate46/gateway/component_registry.hpp"
#include "gate46/mapping/store.hpp"

namespace gate46::gateway {

struct daemon_options {
  std::filesystem::path config_path;
  // --components: replaces daemon.components when set.
  std::optional<std::vector<std::string>> components;
  // --control-socket: replaces control.socket when set (two daemons on one box, split by
  // --components, need one each).
  std::optional<std::filesystem::path> control_socket;
  // gate46d's own process: give up privileges before the worker threads start (see
  // privileges.hpp). Off for a daemon run inside another program (the tests).
  bool drop_privileges = false;
};

class control_server;

class daemon {
 public:
  // Loads and validates the configuration; throws config_error.
  daemon(daemon_options options, const component_registry& registry);
  daemon(const daemon&) = delete;
  daemon& operator=(const daemon&) = delete;
  ~daemon();

  // Runs until stopped. Returns the process exit status: 0 after a clean stop, 1 when the
  // mapping store could not be opened or a component failed to start.
  int run();

  void request_reload();
  void request_stop();

  // The running configuration snapshot.
  [[nodiscard]] std::shared_ptr<const config> current_config() const;

  // The daemon's own counters (reloads applied and rejected). Thread-safe.
  [[nodiscard]] std::vector<counter> counters() const;

 private:
  // Opens the control socket and, when asked to, prepares the directories only root can and
  // gives up privileges; false (logged) when that fails. Runs before any other thread exists.
  bool open_control();
  // A control socket request, on the control thread.
  [[nodiscard]] control::reply answer(const control::request& request) const;
  // Opens what the components share (the mapping store, when one of them needs it); false
  // (logged) when that fails.
  bool open_services();
  // Starts each configured component in order; false (logged) when one fails.
  bool start_components();
  void reload();
  // Once every component's started() (bounded): the "running" log line and READY=1.
  boost::asio::awaitable<void> announce_ready();
  // WATCHDOG=1 every half WatchdogSec while the worker threads answer (when systemd asks).
  void start_watchdog();
  boost::asio::awaitable<void> watchdog(std::chrono::microseconds period);
  // gateway.max_flows, or what the open-file limit allows when it is unset.
  [[nodiscard]] unsigned max_flows(const config& cfg) const;
  boost::asio::awaitable<void> stop_components();

  daemon_options options_;
  const component_registry& registry_;
  boost::asio::io_context control_{1};
  // Installed before the configuration is read, so a SIGHUP or SIGTERM that arrives while the
  // daemon is still starting is queued and handled, never the default action (termination).
  boost::asio::signal_set signals_;
  std::shared_ptr<const config> config_;
  std::unique_ptr<worker_pool> workers_;
  std::unique_ptr<mapping::mapping_store> store_;
  std::unique_ptr<dns::upstream_resolver> resolver_;
  std::unique_ptr<flow_limit> flows_;
  std::uint64_t open_files_ = 0;  // the open-file limit after raising it
  std::unique_ptr<control_server> control_server_;
  std::chrono::steady_clock::time_point started_at_ = std::chrono::steady_clock::now();
  daemon_services services_;
  std::vector<std::unique_ptr<component>> components_;  // in start order
  bool stopping_ = false;                               // control thread only
  int exit_status_ = 0;
  std::atomic<std::uint64_t> reloads_applied_{0};
  std::atomic<std::uint64_t> reloads_rejected_{0};
};

// Splits "dns,socks" into names, checking each against known_components(); throws
// std::invalid_argument naming the bad entry.
std::vector<std::string> parse_component_list(std::string_view text);

}  // namespace gate46::gateway
