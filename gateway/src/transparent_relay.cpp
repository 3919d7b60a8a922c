#include "gate46/gateway/transparent_relay.hpp"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <iterator>
#include <mutex>
#include <string_view>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "destination.hpp"
#include "gate46/common/asio_address.hpp"
#include "gate46/common/log.hpp"
#include "gate46/gateway/access.hpp"
#include "gate46/gateway/relay.hpp"
#include "gate46/tproxy/transparent.hpp"
#include "session_registry.hpp"
#include "transparent_udp.hpp"

namespace gate46::gateway {
namespace asio = boost::asio;
using asio::ip::tcp;

namespace {

constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);

// Ends a connection with a reset: the client learns at once that this flow goes nowhere.
void reset(tcp::socket& socket) {
  boost::system::error_code ignored;
  socket.set_option(asio::socket_base::linger{true, 0}, ignored);
  socket.close(ignored);
}

}  // namespace

transparent_settings transparent_settings_of(const config& cfg) {
  transparent_settings s;
  s.port = cfg.tproxy.port;
  s.deny = cfg.gateway.deny;
  s.pool_v4 = cfg.pools.ipv4;
  s.pool_v6 = cfg.pools.ipv6;
  s.connect = {cfg.gateway.prefer_family, cfg.gateway.happy_eyeballs_delay,
               std::chrono::duration_cast<std::chrono::milliseconds>(cfg.gateway.connect_timeout),
               cfg.tproxy.bypass_mark};
  s.idle_timeout = cfg.gateway.tcp_idle_timeout;
  s.udp_idle_timeout = cfg.gateway.udp_idle_timeout;
  s.udp_dns_idle_timeout = cfg.gateway.udp_dns_idle_timeout;
  s.udp_sessions_per_client = cfg.gateway.udp_sessions_per_client;
  s.udp_sessions_max = cfg.gateway.udp_sessions_max;
  s.hold_ttl = cfg.dns.fake_ttl;
  s.hold_refresh = cfg.pools.hold_refresh;
  // A benchmarking switch, not a configuration key. Measured (tests/bench/relay_bench.sh, 3
  // pairs each): wrk Connection: close 0.59x direct either way, iperf3 -P 4 0.53x per-thread
  // against 0.49x single. Per-thread listeners stay the default: the same throughput for new
  // connections, and no flow's setup crosses threads.
  // Read on the control thread; nothing in gate46d changes the environment.
  // NOLINTNEXTLINE(concurrency-mt-unsafe)
  if (const char* mode = std::getenv("GATE46_RELAY_ACCEPT"); mode != nullptr && std::string_view{mode} == "single") {
    s.accepting = accept_mode::single;
  }
  return s;
}

struct transparent_relay::state {
  state(dns::resolver& r, mapping::mapping_store& s, flow_limit& f, transparent_settings settings)
      : resolver{r},
        store{s},
        flows{f},
        destinations{settings.deny, settings.pool_v4, settings.pool_v6},
        current{std::make_shared<const transparent_settings>(std::move(settings))} {}

  dns::resolver& resolver;
  mapping::mapping_store& store;
  flow_limit& flows;
  destination_policy destinations;
  session_registry sessions;
  flow_totals totals;

  mutable std::mutex mutex;  // guards current
  std::shared_ptr<const transparent_settings> current;

  std::atomic<std::uint64_t> active{0};  // sessions and accept loops still running
  std::atomic<std::uint64_t> connections{0};
  std::atomic<std::uint64_t> relayed{0};
  std::atomic<std::uint64_t> not_fake{0};
  std::atomic<std::uint64_t> unmapped{0};
  std::atomic<std::uint64_t> unresolved{0};
  std::atomic<std::uint64_t> denied_destinations{0};
  std::atomic<std::uint64_t> connect_failures{0};
  std::atomic<std::uint64_t> refused_max_flows{0};
  log_throttle refusal_log;
  log_throttle failure_log;

  std::shared_ptr<const transparent_settings> settings() const {
    const std::lock_guard lock{mutex};
    return current;
  }
};

namespace {

using state_ptr = std::shared_ptr<transparent_relay::state>;

// Refuses the connection (reset) and says why, at most once a second.
void refuse(const state_ptr& st, tcp::socket& client, const endpoint& peer, std::atomic<std::uint64_t>& reason,
            const endpoint& destination, std::string_view why) {
  ++reason;
  if (st->failure_log.allow()) {
    logger("relay")->info("{} -> {}: reset: {}", peer.to_string(), destination.to_string(), why);
  }
  reset(client);
}

// One captured connection, from accept to the start of its relay. The flow slot is taken by the
// accept loop; the relay gives it back when the flow ends.
asio::awaitable<void> session(state_ptr st, std::shared_ptr<tcp::socket> client, endpoint peer, std::uint64_t id) {
  const active_guard guard{st};
  session_registry::entry registration{st->sessions, id};
  flow_slot slot{st->flows};
  const auto settings = st->settings();
  boost::system::error_code ec;
  const auto local = client->local_endpoint(ec);
  if (ec) {
    logger("relay")->debug("a captured connection went before it was read: {}", ec.message());
    reset(*client);
    co_return;
  }
  // TPROXY keeps the address the client aimed at as the accepted socket's local address.
  const auto destination = from_asio_endpoint(local);
  if (!settings->pool_v4.contains(destination.address) && !settings->pool_v6.contains(destination.address)) {
    // The capture rules only take the fake pools; anything else reaching this port was sent
    // to it directly (the input chain drops that) or the rules are someone else's.
    refuse(st, *client, peer, st->not_fake, destination, "not a fake address");
    co_return;
  }
  const auto mapping = st->store.find(destination.address);
  if (!mapping) {
    refuse(st, *client, peer, st->unmapped, destination, "no name is mapped to this fake address");
    co_return;
  }
  // The flow holds its mapping from the start: the lease may not run out under a live flow.
  st->store.hold(destination.address, settings->hold_ttl);
  const auto target = co_await resolve_destination(st->resolver, st->destinations, mapping->name);
  if (!client->is_open()) {
    logger("relay")->debug("{}: closed while resolving {}", destination.to_string(), mapping->name.to_string());
    co_return;  // closed by stop() meanwhile
  }
  if (target.empty()) {
    refuse(st, *client, peer, target.had_addresses ? st->denied_destinations : st->unresolved, destination,
           mapping->name.to_string() + (target.had_addresses ? ": every address is refused" : ": does not resolve"));
    co_return;
  }
  direct_connector connector{settings->connect};
  connect_outcome outcome;
  auto upstream = co_await connector.connect(target.v6, target.v4, destination.port, outcome);
  if (!upstream) {
    refuse(st, *client, peer, st->connect_failures, destination, mapping->name.to_string() + ": " + outcome.describe());
    co_return;
  }
  if (!client->is_open()) {
    logger("relay")->debug("{}: closed while connecting", destination.to_string());
    co_return;
  }
  ++st->relayed;
  relay_settings rs;
  rs.idle_timeout = settings->idle_timeout;
  rs.keepalive_interval = settings->hold_refresh;
  rs.keepalive = [st, fake = destination.address, ttl = settings->hold_ttl] { st->store.hold(fake, ttl); };
  flow_limit* limit = slot.take();
  registration.hand_over();
  auto flow =
      start_relay(std::move(*client), std::move(*upstream), std::move(rs), [st, limit, id](const relay_result& r) {
        limit->release();
        st->sessions.remove(id);
        st->totals.add(r);
      });
  track_relay(st->sessions, id, flow,
              {peer, destination.to_string(), mapping->name.to_string(),
               endpoint{outcome.connected.value_or(ip_address{}), destination.port}});
}

asio::awaitable<void> accept_loop(state_ptr st, std::shared_ptr<tcp::acceptor> acceptor, worker_pool* hand_out) {
  const active_guard guard{st};
  const auto executor = co_await asio::this_coro::executor;
  for (;;) {
    // In single-acceptor mode the new socket lives on the next worker's context from the start.
    tcp::socket socket{hand_out != nullptr ? hand_out->next().get_executor() : executor};
    // accept() reports the client's address anyway: kept for the flow table and log lines.
    tcp::endpoint peer;
    auto [ec] = co_await acceptor->async_accept(socket, peer, use_tuple);
    if (ec == asio::error::operation_aborted || !acceptor->is_open()) {
      break;
    }
    if (ec) {
      // Out of descriptors and the like: pause rather than spin.
      if (st->failure_log.allow()) {
        logger("relay")->warn("accept on tproxy.port failed: {}", ec.message());
      }
      asio::steady_timer pause{executor, std::chrono::milliseconds{100}};
      co_await pause.async_wait(use_tuple);
      continue;
    }
    ++st->connections;
    if (!st->flows.try_acquire()) {
      ++st->refused_max_flows;
      if (st->refusal_log.allow()) {
        logger("relay")->warn("gateway.max_flows ({}) reached: new connections are reset", st->flows.max());
      }
      reset(socket);
      continue;
    }
    auto shared = std::make_shared<tcp::socket>(std::move(socket));
    const auto session_executor = shared->get_executor();
    const auto id =
        st->sessions.add([shared, session_executor] { asio::post(session_executor, [shared] { reset(*shared); }); });
    if (id == 0) {
      st->flows.release();
      reset(*shared);
      break;  // stopping
    }
    // session() takes over the slot taken above.
    asio::co_spawn(session_executor, session(st, shared, from_asio_endpoint(peer), id), asio::detached);
  }
}

}  // namespace

transparent_relay::transparent_relay(worker_pool& workers, dns::resolver& resolver, mapping::mapping_store& store,
                                     flow_limit& flows, transparent_settings settings)
    : workers_{workers}, udp_{std::make_unique<transparent_udp_relay>(workers, resolver, store, flows, settings)} {
  state_ = std::make_shared<state>(resolver, store, flows, std::move(settings));
}

transparent_relay::~transparent_relay() = default;

void transparent_relay::start() {
  const auto settings = state_->settings();
  const bool single = settings->accepting == accept_mode::single;
  const std::size_t listeners = single ? 1 : workers_.size();
  // UDP first: once the TCP line is logged, both protocols are served.
  udp_->start();
  std::vector<std::shared_ptr<tcp::acceptor>> opened;
  for (std::size_t i = 0; i < listeners; ++i) {
    opened.push_back(std::make_shared<tcp::acceptor>(
        tproxy::open_transparent_tcp(workers_.context(i).get_executor(), settings->port, !single)));
  }
  for (std::size_t i = 0; i < opened.size(); ++i) {
    asio::co_spawn(workers_.context(i), accept_loop(state_, opened[i], single ? &workers_ : nullptr), asio::detached);
  }
  acceptors_ = std::move(opened);
  logger("relay")->info("transparent relay on [::]:{} ({} listener{}), at most {} flows", settings->port, listeners,
                        listeners == 1 ? "" : "s, one per thread", state_->flows.max());
}

void transparent_relay::reconfigure(transparent_settings settings) {
  udp_->reconfigure(settings);
  state_->destinations.set_deny(settings.deny);
  const std::lock_guard lock{state_->mutex};
  settings.port = state_->current->port;  // restart key
  settings.accepting = state_->current->accepting;
  state_->current = std::make_shared<const transparent_settings>(std::move(settings));
}

asio::awaitable<void> transparent_relay::stop(std::chrono::steady_clock::time_point deadline) {
  for (std::size_t i = 0; i < acceptors_.size(); ++i) {
    asio::post(acceptors_[i]->get_executor(), [a = acceptors_[i]] {
      boost::system::error_code ignored;
      a->close(ignored);
    });
  }
  acceptors_.clear();
  using namespace asio::experimental::awaitable_operators;
  co_await (drain(state_->sessions, state_->active, deadline) && udp_->stop());
}

std::vector<live_flow> transparent_relay::flows() const {
  auto out = state_->sessions.live_flows("relay");
  auto udp = udp_->flows();
  out.insert(out.end(), std::make_move_iterator(udp.begin()), std::make_move_iterator(udp.end()));
  // Oldest first, TCP and UDP together.
  std::stable_sort(out.begin(), out.end(), [](const live_flow& a, const live_flow& b) { return a.age_ms > b.age_ms; });
  return out;
}

std::vector<counter> transparent_relay::counters() const {
  const auto& s = *state_;
  std::vector<counter> out{{"connections", s.connections.load()},
                           {"flows", s.relayed.load()},
                           {"active_flows", s.sessions.size()},
                           {"not_fake", s.not_fake.load()},
                           {"unmapped", s.unmapped.load()},
                           {"unresolved", s.unresolved.load()},
                           {"denied_destinations", s.denied_destinations.load()},
                           {"connect_failures", s.connect_failures.load()},
                           {"refused_max_flows", s.refused_max_flows.load()}};
  s.totals.append_counters(out);
  udp_->append_counters(out);
  return out;
}

// ---- the component ----------------------------------------------------------------------------

namespace {

class relay_component final : public component {
 public:
  relay_component(const component_context& context, dns::resolver& resolver, mapping::mapping_store& store,
                  flow_limit& flows)
      : relay_{context.workers, resolver, store, flows, transparent_settings_of(context.initial_config)} {}

  [[nodiscard]] std::string_view name() const noexcept override { return "relay"; }
  void start() override { relay_.start(); }
  void reconfigure(const config& cfg) override { relay_.reconfigure(transparent_settings_of(cfg)); }
  asio::awaitable<void> stop(std::chrono::steady_clock::time_point deadline) override {
    co_await relay_.stop(deadline);
  }
  [[nodiscard]] std::vector<counter> counters() const override { return relay_.counters(); }
  [[nodiscard]] std::vector<live_flow> flows() const override { return relay_.flows(); }

 private:
  transparent_relay relay_;
};

}  // namespace

std::unique_ptr<component> make_relay_component(const component_context& context, dns::resolver& resolver,
                                                mapping::mapping_store& store, flow_limit& flows) {
  return std::make_unique<relay_component>(context, resolver, store, flows);
}

}  // namespace gate46::gateway
