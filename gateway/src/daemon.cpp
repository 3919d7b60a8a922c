#include "gate46/gateway/daemon.hpp"

#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <exception>
#include <stdexcept>

#include <systemd/sd-daemon.h>

#include <fmt/ranges.h>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "control_server.hpp"
#include "gate46/common/log.hpp"
#include "gate46/dns/dns_component.hpp"
#include "gate46/gateway/privileges.hpp"
#include "gate46/gateway/relay.hpp"
#include "gate46/mapping/lmdb_store.hpp"

namespace gate46::gateway {
namespace asio = boost::asio;

std::vector<std::string> parse_component_list(std::string_view text) {
  std::vector<std::string> names;
  const auto& known = known_components();
  std::size_t start = 0;
  while (start <= text.size()) {
    const auto comma = std::min(text.find(',', start), text.size());
    const auto name = text.substr(start, comma - start);
    if (std::find(known.begin(), known.end(), name) == known.end()) {
      throw std::invalid_argument{"unknown component \"" + std::string{name} +
                                  "\" (known: " + fmt::format("{}", fmt::join(known, ", ")) + ")"};
    }
    if (std::find(names.begin(), names.end(), name) != names.end()) {
      throw std::invalid_argument{"component \"" + std::string{name} + "\" is listed twice"};
    }
    names.emplace_back(name);
    start = comma + 1;
  }
  return names;
}

namespace {

// To systemd's notification socket (Type=notify); nothing without $NOTIFY_SOCKET.
void notify(const std::string& state) {
  sd_notify(0, state.c_str());
}

std::string monotonic_usec() {
  return std::to_string(
      std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now().time_since_epoch())
          .count());
}

// Whether a configured component uses the mapping store (and the resolver).
bool runs_a_store_user(const config& cfg) {
  const auto& names = cfg.daemon.components;
  return std::any_of(names.begin(), names.end(), [](const std::string& n) { return needs_store(n); });
}

// How long the components may take to put their listeners in place before READY is said anyway.
constexpr std::chrono::seconds ready_limit{10};

std::shared_ptr<const config> load(const daemon_options& options) {
  auto cfg = load_config(options.config_path);
  if (options.components) {
    cfg.daemon.components = *options.components;
  }
  if (options.control_socket) {
    cfg.control.socket = *options.control_socket;
  }
  return std::make_shared<const config>(std::move(cfg));
}

}  // namespace

daemon::daemon(daemon_options options, const component_registry& registry)
    : options_{std::move(options)},
      registry_{registry},
      signals_{control_, SIGTERM, SIGINT, SIGHUP},
      config_{load(options_)} {}

daemon::~daemon() = default;

std::shared_ptr<const config> daemon::current_config() const {
  // Written only on the control thread; readers on other threads go through the control
  // thread or hold their own copy from reconfigure().
  return std::atomic_load(&config_);
}

int daemon::run() {
  const auto log = logger("daemon");
  configure_logging(config_->log);
  log->info("gate46d {} starting: config {}, {} worker threads", GATE46_VERSION, options_.config_path.string(),
            config_->daemon.threads);

  // splice() into a socket whose peer has gone raises SIGPIPE; the relay handles the EPIPE.
  std::signal(SIGPIPE, SIG_IGN);
  open_files_ = raise_open_file_limit();
  if (!open_control()) {
    return 1;
  }

  workers_ = std::make_unique<worker_pool>(config_->daemon.threads);
  workers_->start();

  // Each delivery re-arms; SIGHUP reloads, the first SIGTERM/SIGINT drains, a second one
  // during the drain is logged and otherwise waits for the drain deadline.
  std::function<void(const boost::system::error_code&, int)> on_signal = [&](const boost::system::error_code& ec,
                                                                             int signal) {
    if (ec) {
      return;
    }
    if (signal == SIGHUP) {
      log->info("SIGHUP: reloading {}", options_.config_path.string());
      reload();
    } else {
      log->info("{}: stopping", signal == SIGTERM ? "SIGTERM" : "SIGINT");
      request_stop();
    }
    signals_.async_wait(on_signal);
  };
  signals_.async_wait(on_signal);

  if (open_services() && start_components()) {
    control_server_->start();
    asio::co_spawn(control_, announce_ready(), asio::detached);
    start_watchdog();
  } else {
    exit_status_ = 1;
    request_stop();
  }

  control_.run();

  control_server_->close();
  workers_->stop();
  const auto log_counters = [&](std::string_view owner, const std::vector<counter>& list) {
    std::string line;
    for (const auto& [name, value] : list) {
      line += fmt::format("{}{}={}", line.empty() ? "" : " ", name, value);
    }
    log->info("{} counters: {}", owner, line.empty() ? "(none)" : line);
  };
  log_counters("daemon", counters());
  for (const auto& c : components_) {
    log_counters(fmt::format("component {}", c->name()), c->counters());
  }
  components_.clear();
  // Last: writes pending holds and syncs the store to disk.
  resolver_.reset();
  store_.reset();
  log->info("gate46d stopped");
  return exit_status_;
}

asio::awaitable<void> daemon::announce_ready() {
  using namespace boost::asio::experimental::awaitable_operators;
  const auto log = logger("daemon");
  asio::steady_timer limit{control_, ready_limit};
  for (const auto& c : components_) {
    const auto first = co_await (c->started() || limit.async_wait(asio::as_tuple(asio::use_awaitable)));
    if (first.index() == 1) {
      log->warn("component {}: not in place after {} s; saying READY anyway", c->name(), ready_limit.count());
    }
  }
  if (stopping_) {
    co_return;
  }
  std::vector<std::string_view> running;
  std::vector<std::string_view> skipped;
  for (const auto& name : config_->daemon.components) {
    const bool started =
        std::any_of(components_.begin(), components_.end(), [&](const auto& c) { return c->name() == name; });
    (started ? running : skipped).push_back(name);
  }
  if (skipped.empty()) {
    log->info("gate46d running: components [{}]", fmt::join(running, ", "));
  } else {
    log->info("gate46d running: components [{}] (not in this build: {})", fmt::join(running, ", "),
              fmt::join(skipped, ", "));
  }
  notify(fmt::format("READY=1\nSTATUS=running: {}", fmt::join(running, ", ")));
}

void daemon::start_watchdog() {
  std::uint64_t usec = 0;
  if (sd_watchdog_enabled(0, &usec) <= 0 || usec == 0) {
    return;
  }
  const std::chrono::microseconds period{usec / 2};
  logger("daemon")->info("systemd watchdog: a ping every {} ms while every worker thread answers",
                         period.count() / 1000);
  asio::co_spawn(control_, watchdog(period), asio::detached);
}

// Pings only while the control loop runs and every worker answered the previous tick's probe:
// a worker stuck in a handler stops the pings, and systemd restarts the daemon.
asio::awaitable<void> daemon::watchdog(std::chrono::microseconds period) {
  asio::steady_timer timer{control_};
  const auto answered = std::make_shared<std::atomic<std::size_t>>(workers_->size());
  log_throttle late_log{std::chrono::seconds{10}};
  for (;;) {
    if (answered->load() == workers_->size()) {
      notify("WATCHDOG=1");
    } else if (late_log.allow()) {
      logger("daemon")->warn("a worker thread did not answer within {} ms: no watchdog ping", period.count() / 1000);
    }
    answered->store(0);
    for (std::size_t i = 0; i < workers_->size(); ++i) {
      asio::post(workers_->context(i), [answered] { answered->fetch_add(1); });
    }
    timer.expires_after(period);
    auto [ec] = co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
    if (ec || stopping_) {
      co_return;
    }
  }
}

bool daemon::open_control() {
  const auto log = logger("daemon");
  try {
    std::optional<account> user;
    if (options_.drop_privileges && ::geteuid() == 0) {
      user = find_account(config_->daemon.user);
      // What the user could not create itself; an existing directory keeps its owner and mode.
      if (runs_a_store_user(*config_) && config_->store.path.has_parent_path()) {
        prepare_directory(config_->store.path.parent_path(), *user, 02770);
      }
      if (config_->control.socket.has_parent_path()) {
        prepare_directory(config_->control.socket.parent_path(), *user, 0750);
      }
    }
    control_server_ = std::make_unique<control_server>(control_, config_->control.socket,
                                                       [this](const control::request& r) { return answer(r); });
    control_server_->open(user ? std::optional<uid_t>{user->uid} : std::nullopt, find_group("gate46"));
    if (options_.drop_privileges) {
      drop_privileges(user);
      log->info("running as {}", describe_privileges());
    }
    return true;
  } catch (const std::exception& e) {
    log->critical("cannot start: {}", e.what());
    return false;
  }
}

control::reply daemon::answer(const control::request& request) const {
  switch (request.command) {
    case control::command::status: {
      control::status_reply s;
      s.version = GATE46_VERSION;
      s.pid = ::getpid();
      s.user = current_user_name();
      s.config_path = options_.config_path.string();
      s.uptime_seconds = static_cast<std::uint64_t>(
          std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now() - started_at_).count());
      s.threads = workers_ ? workers_->size() : 0;
      for (const auto& c : components_) {
        s.components.emplace_back(c->name());
      }
      s.reloads_applied = reloads_applied_.load();
      s.reloads_rejected = reloads_rejected_.load();
      return s;
    }
    case control::command::flows: {
      std::vector<live_flow> flows;
      for (const auto& c : components_) {
        auto more = c->flows();
        flows.insert(flows.end(), std::make_move_iterator(more.begin()), std::make_move_iterator(more.end()));
      }
      return flows;
    }
    case control::command::stats: {
      control::stats_reply s;
      s.groups.push_back({"daemon", counters()});
      for (const auto& c : components_) {
        s.groups.push_back({std::string{c->name()}, c->counters()});
      }
      if (store_) {
        const auto stats = store_->stats();
        for (const auto* p : {&stats.v4, &stats.v6}) {
          s.pools.push_back({p->prefix.to_string(), p->size, p->used, p->eligible, p->allocation_failures});
        }
      }
      return s;
    }
  }
  return control::error_reply{"unknown command"};
}

bool daemon::open_services() {
  if (!runs_a_store_user(*config_)) {
    return true;
  }
  try {
    const auto key = mapping::load_pool_key(config_->pools.key_file);
    store_ = mapping::open_lmdb_store(mapping::lmdb_store_options::from_config(*config_, key));
    services_.store = store_.get();
    // Answers cached for the whole network: 100,000 entries of a few hundred bytes each.
    constexpr std::size_t cache_entries = 100'000;
    resolver_ = std::make_unique<dns::upstream_resolver>(dns::upstream_settings_of(*config_), cache_entries);
    services_.resolver = resolver_.get();
    flows_ = std::make_unique<flow_limit>(max_flows(*config_));
    services_.flows = flows_.get();
    logger("daemon")->info("open-file limit {}: at most {} flows (gateway.max_flows{})", open_files_, flows_->max(),
                           config_->gateway.max_flows ? "" : " derived from it");
    logger("daemon")->info("mapping store {} open (pools {} and {})", config_->store.path.string(),
                           config_->pools.ipv4.to_string(), config_->pools.ipv6.to_string());
    return true;
  } catch (const std::exception& e) {
    logger("daemon")->critical("cannot open the mapping store: {}{}", e.what(),
                               ::geteuid() != 0 ? fmt::format(" (gate46d runs as {}: the store, its directory and "
                                                              "pools.key_file must be usable by it)",
                                                              current_user_name())
                                                : std::string{});
    return false;
  }
}

bool daemon::start_components() {
  const auto log = logger("daemon");
  const component_context context{*config_, *workers_, control_.get_executor()};
  for (const auto& name : config_->daemon.components) {
    const auto* make = registry_.find(name);
    if (make == nullptr) {
      log->warn("component {}: not part of this build, skipped", name);
      continue;
    }
    try {
      auto c = (*make)(context, services_);
      c->start();
      log->info("component {}: started", name);
      components_.push_back(std::move(c));
    } catch (const std::exception& e) {
      log->critical("component {}: cannot start: {}", name, e.what());
      return false;
    }
  }
  return true;
}

void daemon::reload() {
  notify("RELOADING=1\nMONOTONIC_USEC=" + monotonic_usec());
  // READY again whatever the outcome: a rejected file leaves the running configuration serving.
  struct ready_again {
    ready_again() = default;
    ready_again(const ready_again&) = delete;
    ready_again& operator=(const ready_again&) = delete;
    ~ready_again() { notify("READY=1"); }
  } const ready;
  const auto log = logger("daemon");
  std::shared_ptr<const config> loaded;
  try {
    loaded = load(options_);
  } catch (const config_error& e) {
    log->error("reload rejected, keeping the running configuration: {}", e.what());
    ++reloads_rejected_;
    return;
  }
  const auto changed = changed_keys(*config_, *loaded);
  if (changed.empty()) {
    log->info("reload: no key changed");
    ++reloads_applied_;
    return;
  }
  const auto restart = keys_needing_restart(*config_, *loaded);
  log->info("reload: changed keys [{}]", fmt::join(changed, ", "));
  if (!restart.empty()) {
    log->warn("reload: these changes take effect only after a restart: [{}]", fmt::join(restart, ", "));
  }
  std::atomic_store(&config_, loaded);
  if (store_) {
    store_->set_lease_policy(loaded->pools.lease_grace, loaded->pools.hold_refresh);
  }
  if (resolver_) {
    resolver_->reconfigure(dns::upstream_settings_of(*loaded));
  }
  if (flows_) {
    flows_->set_max(max_flows(*loaded));
  }
  for (const auto& c : components_) {
    try {
      c->reconfigure(*loaded);
    } catch (const std::exception& e) {
      log->error("component {}: reconfigure failed, it keeps its previous settings: {}", c->name(), e.what());
    }
  }
  ++reloads_applied_;
  log->info("reload: applied");
  // Last, so the lines above reach the log even when the new level hides info.
  configure_logging(loaded->log);
}

unsigned daemon::max_flows(const config& cfg) const {
  const unsigned derived = default_max_flows(open_files_, cfg.daemon.threads, pipes_per_thread());
  if (!cfg.gateway.max_flows) {
    return derived;
  }
  if (*cfg.gateway.max_flows > derived) {
    logger("daemon")->warn(
        "gateway.max_flows {} is more than the open-file limit {} allows ({}): flows past that "
        "may fail with \"too many open files\"",
        *cfg.gateway.max_flows, open_files_, derived);
  }
  return *cfg.gateway.max_flows;
}

std::vector<counter> daemon::counters() const {
  // The relay engine's pipes, in use or idle in the worker threads' pools (SOCKS and relay).
  return {{"reloads_applied", reloads_applied_.load()},
          {"reloads_rejected", reloads_rejected_.load()},
          {"relay_pipes_open", relay_stats().pipes_open}};
}

void daemon::request_reload() {
  asio::post(control_, [this] { reload(); });
}

void daemon::request_stop() {
  asio::post(control_, [this] {
    if (stopping_) {
      logger("daemon")->info("already stopping; waiting for the drain deadline");
      return;
    }
    stopping_ = true;
    notify("STOPPING=1");
    asio::co_spawn(control_, stop_components(), [this](const std::exception_ptr& error) {
      if (error) {
        try {
          std::rethrow_exception(error);
        } catch (const std::exception& e) {
          logger("daemon")->error("stop: {}", e.what());
        }
      }
      control_.stop();
    });
  });
}

asio::awaitable<void> daemon::stop_components() {
  const auto deadline = std::chrono::steady_clock::now() + config_->gateway.drain_timeout;
  logger("daemon")->info("draining for up to {} s", config_->gateway.drain_timeout.count());
  // Reverse start order: the relay stops before the firewall removes the capture rules.
  for (auto it = components_.rbegin(); it != components_.rend(); ++it) {
    try {
      co_await (*it)->stop(deadline);
      logger("daemon")->info("component {}: stopped", (*it)->name());
    } catch (const std::exception& e) {
      logger("daemon")->error("component {}: stop failed: {}", (*it)->name(), e.what());
    }
  }
}

}  // namespace gate46::gateway
