#include "gate46/gateway/socks_server.hpp"

#include <sodium.h>

#include <algorithm>
#include <atomic>
#include <functional>
#include <mutex>
#include <thread>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ip/v6_only.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include "destination.hpp"
#include "gate46/common/address_watcher.hpp"
#include "gate46/common/asio_address.hpp"
#include "gate46/common/log.hpp"
#include "gate46/gateway/access.hpp"
#include "gate46/gateway/relay.hpp"
#include "gate46/gateway/socks5.hpp"
#include "socks_state.hpp"

namespace gate46::gateway {
namespace asio = boost::asio;
using namespace boost::asio::experimental::awaitable_operators;
using asio::ip::tcp;

namespace {

constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);
using reuse_port = asio::detail::socket_option::boolean<SOL_SOCKET, SO_REUSEPORT>;
// The longest handshake message: a request with a 255-byte domain (262 bytes), or RFC 1929
// credentials (513 bytes).
constexpr std::size_t max_handshake_bytes = 600;
// Password checks waiting for the verification pool; past it a login fails at once (counted):
// argon2id is deliberately slow, and a flood of logins must not queue without bound.
constexpr unsigned max_pending_verifications = 64;

}  // namespace

socks_settings socks_settings_of(const config& cfg) {
  socks_settings s;
  s.networks = cfg.gateway.socks_networks;
  s.users = cfg.gateway.users;
  s.deny = cfg.gateway.deny;
  s.pool_v4 = cfg.pools.ipv4;
  s.pool_v6 = cfg.pools.ipv6;
  s.connect = {cfg.gateway.prefer_family, cfg.gateway.happy_eyeballs_delay,
               std::chrono::duration_cast<std::chrono::milliseconds>(cfg.gateway.connect_timeout),
               cfg.tproxy.bypass_mark};
  s.idle_timeout = cfg.gateway.tcp_idle_timeout;
  s.bind_timeout = cfg.gateway.bind_timeout;
  s.hold_ttl = cfg.dns.fake_ttl;
  s.hold_refresh = cfg.pools.hold_refresh;
  return s;
}

std::string hash_password(const std::string& password) {
  if (sodium_init() < 0) {
    throw std::runtime_error{"libsodium failed to initialise"};
  }
  std::string out(crypto_pwhash_STRBYTES, '\0');
  if (crypto_pwhash_str(out.data(), password.data(), password.size(), crypto_pwhash_OPSLIMIT_INTERACTIVE,
                        crypto_pwhash_MEMLIMIT_INTERACTIVE) != 0) {
    throw std::runtime_error{"out of memory hashing the password"};
  }
  out.resize(std::strlen(out.c_str()));
  return out;
}

socks_server::state::state(dns::resolver& r, mapping::mapping_store& s, flow_limit& f, socks_settings settings)
    : resolver{r},
      store{s},
      flows{f},
      verifier{std::max(1U, std::thread::hardware_concurrency())},
      destinations{settings.deny, settings.pool_v4, settings.pool_v6},
      current{std::make_shared<const socks_settings>(std::move(settings))} {}

asio::awaitable<void> send_message(tcp::socket& client, const socks5::bytes& message) {
  co_await asio::async_write(client, asio::buffer(message), socks_use_tuple);
}

void start_socks_relay(const socks_session& s, tcp::socket upstream, std::optional<ip_address> fake, flow_slot& slot,
                       session_registry::entry& registration, flow_description description) {
  const auto& st = s.st;
  relay_settings rs;
  rs.idle_timeout = s.settings->idle_timeout;
  if (fake) {
    // The flow holds its fake address's mapping while it lives.
    st->store.hold(*fake, s.settings->hold_ttl);
    rs.keepalive_interval = s.settings->hold_refresh;
    rs.keepalive = [st, fake = *fake, ttl = s.settings->hold_ttl] { st->store.hold(fake, ttl); };
  }
  flow_limit* limit = slot.take();
  registration.hand_over();
  auto flow =
      start_relay(std::move(*s.client), std::move(upstream), std::move(rs),
                  [st, limit, id = s.id, peer = s.peer, destination = description.destination](const relay_result& r) {
                    limit->release();
                    st->sessions.remove(id);
                    st->totals.add(r);
                    logger("socks")->debug("{}: {} closed: {} bytes up, {} down{}", peer.to_string(), destination,
                                           r.client_to_target, r.target_to_client, r.idle_timeout ? " (idle)" : "");
                  });
  track_relay(st->sessions, s.id, flow, std::move(description));
}

namespace {

using state_ptr = socks_state_ptr;

// Reads from `client` into `buffer` until `parse` has a whole message or rejects it.
template <typename T, typename Parse>
asio::awaitable<socks5::parse_result<T>> read_message(tcp::socket& client, std::vector<std::uint8_t>& buffer,
                                                      Parse parse) {
  for (;;) {
    auto result = parse(socks5::byte_view{buffer});
    if (!std::holds_alternative<socks5::need_more>(result)) {
      co_return result;
    }
    if (buffer.size() >= max_handshake_bytes) {
      co_return socks5::malformed{std::nullopt, "handshake too long"};
    }
    std::array<std::uint8_t, max_handshake_bytes> chunk{};
    auto [ec, n] =
        co_await client.async_read_some(asio::buffer(chunk.data(), max_handshake_bytes - buffer.size()), use_tuple);
    if (ec) {
      co_return socks5::malformed{std::nullopt, "connection closed during the handshake"};
    }
    buffer.insert(buffer.end(), chunk.begin(), chunk.begin() + static_cast<std::ptrdiff_t>(n));
  }
}

template <typename T>
void consume(std::vector<std::uint8_t>& buffer, const socks5::parsed<T>& p) {
  buffer.erase(buffer.begin(), buffer.begin() + static_cast<std::ptrdiff_t>(p.consumed));
}

// A named coroutine with its arguments by value, not a capturing lambda: g++ 12 destroys a
// lambda coroutine's captures twice when co_spawn's frame goes (free(): invalid pointer).
asio::awaitable<bool> verify_on_pool(std::string hash, std::string password) {
  co_return crypto_pwhash_str_verify(hash.c_str(), password.data(), password.size()) == 0;
}

asio::awaitable<bool> verify_password(const state_ptr& st, const socks5::credentials& c,
                                      const std::vector<socks_user>& users) {
  const auto user = std::find_if(users.begin(), users.end(), [&](const socks_user& u) { return u.name == c.username; });
  if (user == users.end()) {
    co_return false;
  }
  if (st->pending_verifications.fetch_add(1) >= max_pending_verifications) {
    --st->pending_verifications;
    ++st->auth_overload;
    co_return false;
  }
  const bool ok =
      co_await asio::co_spawn(st->verifier, verify_on_pool(user->password_hash, c.password), asio::use_awaitable);
  --st->pending_verifications;
  co_return ok;
}

}  // namespace

asio::awaitable<resolved_target> resolve_target(const socks_state_ptr& st, const socks5::target& t) {
  resolved_target out;
  std::optional<dns_name> name;
  if (const auto* address = std::get_if<ip_address>(&t.host)) {
    out.name = address->to_string();
    switch (st->destinations.check(*address)) {
      case destination_verdict::denied:
        out.failure = socks5::reply_code::not_allowed;
        co_return out;
      case destination_verdict::fake_pool: {
        // RFC 3089 §3: a fake address stands for its name; the gateway resolves the name.
        const auto m = st->store.find(*address);
        if (!m) {
          out.failure = socks5::reply_code::not_allowed;
          co_return out;
        }
        out.fake = *address;
        name = m->name;
        break;
      }
      case destination_verdict::allowed:
        (address->is_v4() ? out.v4 : out.v6).push_back(*address);
        break;
    }
  } else {
    name = std::get<dns_name>(t.host);
  }
  if (name) {
    out.name = name->to_string();
    auto found = co_await resolve_destination(st->resolver, st->destinations, *name);
    if (found.empty()) {
      // NXDOMAIN, NODATA, no answer: 04; only refused addresses: 02.
      out.failure = found.had_addresses ? socks5::reply_code::not_allowed : socks5::reply_code::host_unreachable;
    }
    out.v6 = std::move(found.v6);
    out.v4 = std::move(found.v4);
  } else if (is_own_address(out.v4.empty() ? out.v6.front() : out.v4.front())) {
    out.failure = socks5::reply_code::not_allowed;
  }
  co_return out;
}

namespace {

asio::awaitable<void> serve_connect(socks_session s, flow_slot& slot, session_registry::entry& registration) {
  const auto& st = s.st;
  auto& client = *s.client;
  const auto& request = s.request;
  boost::system::error_code ignored;
  const auto log = logger("socks");
  const auto target = co_await resolve_target(st, request.destination);
  if (target.failure) {
    if (*target.failure == socks5::reply_code::not_allowed) {
      ++st->denied_destinations;
    }
    log->info("{}: CONNECT {} refused ({})", s.peer.to_string(), request.destination.to_string(),
              static_cast<int>(*target.failure));
    co_await send_message(client, socks5::make_failure_reply(*target.failure));
    client.close(ignored);
    co_return;
  }
  direct_connector connector{s.settings->connect};
  connect_outcome outcome;
  auto upstream = co_await connector.connect(target.v6, target.v4, request.destination.port, outcome);
  if (!upstream) {
    ++st->connect_failures;
    log->info("{}: CONNECT {} ({}) failed: {}", s.peer.to_string(), request.destination.to_string(), target.name,
              outcome.describe());
    co_await send_message(client, socks5::make_failure_reply(socks5::reply_for_errno(outcome.error.value())));
    client.close(ignored);
    co_return;
  }
  const auto bound = from_asio_endpoint(upstream->local_endpoint(ignored));
  co_await send_message(client, socks5::make_reply(socks5::reply_code::succeeded, bound));
  ++st->relayed;
  const bool named = target.fake || std::holds_alternative<dns_name>(request.destination.host);
  start_socks_relay(s, std::move(*upstream), target.fake, slot, registration,
                    {s.peer, request.destination.to_string(), named ? target.name : std::string{},
                     endpoint{outcome.connected.value_or(ip_address{}), request.destination.port}});
}

// A named coroutine with its arguments by value (not a capturing lambda: g++ 12 destroys a
// lambda coroutine's captures twice). The accept loop took the flow slot and registered the
// session; both are handed to the relay, or given back when the session ends before it.
asio::awaitable<void> session(state_ptr st, std::shared_ptr<tcp::socket> socket, std::uint64_t id) {
  const active_guard guard{st};
  session_registry::entry registration{st->sessions, id};
  flow_slot slot{st->flows};
  auto& client = *socket;
  boost::system::error_code ignored;
  const auto peer = from_asio_endpoint(client.remote_endpoint(ignored));
  const auto settings = st->settings();
  const auto log = logger("socks");

  // The handshake, bounded in time as a whole: a client that stalls is closed.
  std::vector<std::uint8_t> buffer;
  std::optional<socks5::request> request;
  const auto handshake = [&]() -> asio::awaitable<void> {
    const auto access = client_policy{settings->networks}.check(peer.address);
    auto greeting = co_await read_message<socks5::greeting>(client, buffer, socks5::parse_greeting);
    auto* g = std::get_if<socks5::parsed<socks5::greeting>>(&greeting);
    if (g == nullptr) {
      ++st->malformed;
      co_return;
    }
    consume(buffer, *g);
    if (access == client_access::refused) {
      ++st->refused_clients;
      co_await send_message(client, socks5::make_method_selection(socks5::method::none_acceptable));
      co_return;
    }
    const auto m = socks5::choose_method(g->value, access == client_access::password);
    co_await send_message(client, socks5::make_method_selection(m));
    if (m == socks5::method::none_acceptable) {
      co_return;
    }
    if (m == socks5::method::username_password) {
      auto creds = co_await read_message<socks5::credentials>(client, buffer, socks5::parse_credentials);
      auto* c = std::get_if<socks5::parsed<socks5::credentials>>(&creds);
      if (c == nullptr) {
        ++st->malformed;
        co_await send_message(client, socks5::make_auth_status(false));
        co_return;
      }
      consume(buffer, *c);
      const bool ok = co_await verify_password(st, c->value, settings->users);
      co_await send_message(client, socks5::make_auth_status(ok));
      if (!ok) {
        ++st->auth_failures;
        log->info("{}: authentication failed for user {}", peer.to_string(), c->value.username);
        co_return;
      }
    }
    auto parsed = co_await read_message<socks5::request>(client, buffer, socks5::parse_request);
    if (auto* bad = std::get_if<socks5::malformed>(&parsed)) {
      ++st->malformed;
      if (bad->reply) {
        co_await send_message(client, socks5::make_failure_reply(*bad->reply));
      }
      co_return;
    }
    auto& r = std::get<socks5::parsed<socks5::request>>(parsed);
    consume(buffer, r);
    request = std::move(r.value);
  };
  asio::steady_timer deadline{co_await asio::this_coro::executor};
  deadline.expires_after(settings->handshake_timeout);
  const auto finished = co_await (handshake() || deadline.async_wait(use_tuple));
  if (finished.index() == 1 || !request) {
    client.close(ignored);
    co_return;
  }

  socks_session s{st, socket, peer, settings, std::move(*request), id};
  switch (static_cast<socks5::command>(s.request.command)) {
    case socks5::command::connect:
      co_await serve_connect(std::move(s), slot, registration);
      co_return;
    case socks5::command::bind:
      co_await serve_bind(std::move(s), slot, registration);
      co_return;
    case socks5::command::udp_associate:
      co_await serve_udp_associate(std::move(s));
      co_return;
  }
  co_await send_message(client, socks5::make_failure_reply(socks5::reply_code::command_not_supported));
  client.close(ignored);
}

asio::awaitable<void> accept_loop(state_ptr st, std::shared_ptr<tcp::acceptor> acceptor) {
  const active_guard guard{st};
  const auto executor = co_await asio::this_coro::executor;
  while (true) {
    auto [ec, socket] = co_await acceptor->async_accept(use_tuple);
    if (ec == asio::error::operation_aborted || !acceptor->is_open()) {
      break;
    }
    if (ec) {
      // Out of descriptors and the like: pause rather than spin.
      asio::steady_timer pause{executor, std::chrono::milliseconds{100}};
      co_await pause.async_wait(use_tuple);
      continue;
    }
    ++st->connections;
    if (!st->flows.try_acquire()) {
      // gateway.max_flows: refused at once, before any handshake state is spent on it.
      ++st->refused_max_flows;
      if (st->refusal_log.allow()) {
        logger("socks")->warn("gateway.max_flows ({}) reached: new connections are reset", st->flows.max());
      }
      boost::system::error_code ignored;
      socket.set_option(asio::socket_base::linger{true, 0}, ignored);
      socket.close(ignored);
      continue;
    }
    auto shared = std::make_shared<tcp::socket>(std::move(socket));
    const auto id = st->sessions.add([shared, executor] {
      asio::post(executor, [shared] {
        boost::system::error_code ignored;
        shared->close(ignored);
      });
    });
    if (id == 0) {
      st->flows.release();
      break;  // stopping
    }
    asio::co_spawn(executor, session(st, shared, id), asio::detached);
  }
}

}  // namespace

struct socks_server::listener {
  asio::io_context& context;
  std::shared_ptr<tcp::acceptor> acceptor;
};

socks_server::socks_server(worker_pool& workers, dns::resolver& resolver, mapping::mapping_store& store,
                           flow_limit& flows, socks_settings settings)
    : workers_{workers}, state_{std::make_shared<state>(resolver, store, flows, std::move(settings))} {
  if (sodium_init() < 0) {
    throw std::runtime_error{"libsodium failed to initialise"};
  }
}

socks_server::~socks_server() {
  for (auto& [at, group] : listeners_) {
    for (auto& l : group) {
      asio::post(l->context, [l] {
        boost::system::error_code ignored;
        l->acceptor->close(ignored);
      });
    }
  }
}

void socks_server::listen(const endpoint& at) {
  if (listeners_.contains(at)) {
    return;
  }
  std::vector<std::shared_ptr<listener>> group;
  for (std::size_t i = 0; i < workers_.size(); ++i) {
    auto& context = workers_.context(i);
    auto acceptor = std::make_shared<tcp::acceptor>(context);
    const auto tcp_at = to_asio_endpoint<tcp>(at);
    acceptor->open(tcp_at.protocol());
    acceptor->set_option(asio::socket_base::reuse_address{true});
    acceptor->set_option(reuse_port{true});
    if (at.address.is_v6()) {
      acceptor->set_option(asio::ip::v6_only{true});
    }
    acceptor->bind(tcp_at);
    acceptor->listen();
    group.push_back(std::make_shared<listener>(listener{context, std::move(acceptor)}));
  }
  for (const auto& l : group) {
    asio::co_spawn(l->context, accept_loop(state_, l->acceptor), asio::detached);
  }
  listeners_.emplace(at, std::move(group));
  logger("socks")->info("SOCKS5 on {}", at.to_string());
}

void socks_server::close(const endpoint& at) {
  const auto it = listeners_.find(at);
  if (it == listeners_.end()) {
    return;
  }
  for (auto& l : it->second) {
    asio::post(l->context, [l] {
      boost::system::error_code ignored;
      l->acceptor->close(ignored);
    });
  }
  listeners_.erase(it);
  logger("socks")->info("no longer serving SOCKS5 on {}", at.to_string());
}

std::vector<endpoint> socks_server::endpoints() const {
  std::vector<endpoint> out;
  out.reserve(listeners_.size());
  for (const auto& [at, group] : listeners_) {
    out.push_back(at);
  }
  return out;
}

void socks_server::reconfigure(socks_settings settings) {
  state_->destinations.set_deny(settings.deny);
  const std::lock_guard lock{state_->mutex};
  state_->current = std::make_shared<const socks_settings>(std::move(settings));
}

asio::awaitable<void> socks_server::stop(std::chrono::steady_clock::time_point deadline) {
  for (const auto& at : endpoints()) {
    close(at);
  }
  co_await drain(state_->sessions, state_->active, deadline);
}

std::vector<live_flow> socks_server::flows() const {
  return state_->sessions.live_flows("socks");
}

std::vector<counter> socks_server::counters() const {
  const auto& s = *state_;
  std::vector<counter> out{{"connections", s.connections.load()},
                           {"refused_clients", s.refused_clients.load()},
                           {"auth_failures", s.auth_failures.load()},
                           {"auth_overload", s.auth_overload.load()},
                           {"malformed", s.malformed.load()},
                           {"denied_destinations", s.denied_destinations.load()},
                           {"connect_failures", s.connect_failures.load()},
                           {"flows", s.relayed.load()},
                           {"active_flows", s.sessions.size()},
                           {"refused_max_flows", s.refused_max_flows.load()},
                           {"udp_associations", s.udp_associations.load()},
                           {"udp_to_target", s.udp_to_target.load()},
                           {"udp_to_client", s.udp_to_client.load()},
                           {"udp_bytes_up", s.udp_bytes_up.load()},
                           {"udp_bytes_down", s.udp_bytes_down.load()},
                           {"udp_foreign_client", s.udp_foreign_client.load()},
                           {"udp_foreign_target", s.udp_foreign_target.load()},
                           {"udp_fragments", s.udp_fragments.load()},
                           {"udp_malformed", s.udp_malformed.load()},
                           {"udp_truncated", s.udp_truncated.load()},
                           {"udp_denied", s.udp_denied.load()},
                           {"udp_unresolved", s.udp_unresolved.load()},
                           {"udp_send_errors", s.udp_send_errors.load()},
                           {"binds", s.binds.load()},
                           {"bind_timeouts", s.bind_timeouts.load()},
                           {"bind_unexpected_peers", s.bind_unexpected_peers.load()},
                           {"bind_failures", s.bind_failures.load()}};
  s.totals.append_counters(out);
  return out;
}

// ---- the component ----------------------------------------------------------------------------

namespace {

class socks_component final : public component {
 public:
  socks_component(const component_context& context, dns::resolver& resolver, mapping::mapping_store& store,
                  flow_limit& flows)
      : listen_{context.initial_config.gateway.socks_listen},
        interfaces_{context.initial_config.lan.interfaces},
        control_{context.control},
        server_{context.workers, resolver, store, flows, socks_settings_of(context.initial_config)} {}

  [[nodiscard]] std::string_view name() const noexcept override { return "socks"; }

  void start() override {
    if (!listen_.empty()) {
      for (const auto& at : listen_) {
        server_.listen(at);
      }
      return;
    }
    server_.listen({*ip_address::parse("127.0.0.1"), default_port});
    try {
      server_.listen({*ip_address::parse("::1"), default_port});
    } catch (const std::exception& e) {
      logger("socks")->warn("no SOCKS5 on [::1]:{}: {}", default_port, e.what());
    }
    watcher_ = std::make_unique<address_watcher>(control_, interfaces_);
    subscription_ = watcher_->subscribe([this](const address_change& change) {
      if (change.address.is_link_local()) {
        return;
      }
      const endpoint at{change.address.address, default_port};
      if (change.what == address_change::kind::removed) {
        server_.close(at);
        return;
      }
      try {
        server_.listen(at);
      } catch (const std::exception& e) {
        logger("socks")->error("cannot serve SOCKS5 on {} ({}): {}", at.to_string(), change.address.interface,
                               e.what());
      }
    });
  }

  void reconfigure(const config& cfg) override { server_.reconfigure(socks_settings_of(cfg)); }

  // Listeners on the watcher's first dump are open once it is ready: its subscriber ran first.
  asio::awaitable<void> started() override {
    if (watcher_) {
      (void)co_await watcher_->wait_ready();
    }
  }

  asio::awaitable<void> stop(std::chrono::steady_clock::time_point deadline) override {
    subscription_.reset();
    if (watcher_) {
      watcher_->stop();
    }
    co_await server_.stop(deadline);
  }

  [[nodiscard]] std::vector<counter> counters() const override { return server_.counters(); }
  [[nodiscard]] std::vector<live_flow> flows() const override { return server_.flows(); }

 private:
  static constexpr std::uint16_t default_port = 1080;
  std::vector<endpoint> listen_;
  std::vector<std::string> interfaces_;
  asio::any_io_executor control_;
  socks_server server_;
  std::unique_ptr<address_watcher> watcher_;
  address_watcher::subscription subscription_;
};

}  // namespace

std::unique_ptr<component> make_socks_component(const component_context& context, dns::resolver& resolver,
                                                mapping::mapping_store& store, flow_limit& flows) {
  return std::make_unique<socks_component>(context, resolver, store, flows);
}

}  // namespace gate46::gateway
