#include "gate46/dns/server.hpp"

#include <array>
#include <deque>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ip/udp.hpp>
#include <boost/asio/ip/v6_only.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/socket_base.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include "gate46/common/asio_address.hpp"
#include "gate46/common/log.hpp"

namespace gate46::dns {
namespace asio = boost::asio;
using namespace boost::asio::experimental::awaitable_operators;
using asio::ip::tcp;
using asio::ip::udp;

namespace {

constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);
// UDP queries being answered at once per server; past it new ones are dropped (the client
// retries), so a flood of queries to a dead upstream cannot exhaust memory.
constexpr std::uint64_t max_udp_in_flight = 8192;
// Queries in flight plus replies not yet written, per TCP connection; past it the connection
// stops reading until some are answered and written, so a client that never reads its answers
// holds at most this many in memory.
constexpr std::size_t max_tcp_backlog = 64;

// SO_REUSEPORT: one socket per worker on the same endpoint, spread by the kernel.
using reuse_port = asio::detail::socket_option::boolean<SOL_SOCKET, SO_REUSEPORT>;

}  // namespace

struct dns_server::state {
  explicit state(responder& r, server_settings s) : answers{r}, settings{std::move(s)} {}

  responder& answers;

  std::mutex mutex;  // guards settings, admission and sessions
  server_settings settings;
  std::map<ip_address, unsigned> tcp_per_client;
  unsigned tcp_total = 0;
  std::map<std::uint64_t, std::function<void()>> session_closers;  // each posts a close to its thread
  std::uint64_t next_session = 0;
  bool stopping = false;

  std::atomic<std::uint64_t> active{0};  // coroutines that must end before stop() completes
  std::atomic<std::uint64_t> udp_in_flight{0};
  std::atomic<std::uint64_t> udp_queries{0};
  std::atomic<std::uint64_t> tcp_queries{0};
  std::atomic<std::uint64_t> refused_clients{0};
  std::atomic<std::uint64_t> malformed{0};
  std::atomic<std::uint64_t> dropped{0};          // not queries (responses, no header)
  std::atomic<std::uint64_t> shed{0};             // queries dropped for max_udp_in_flight
  std::atomic<std::uint64_t> internal_errors{0};  // SERVFAIL for an exception while answering
  std::atomic<std::uint64_t> tcp_connections{0};
  std::atomic<std::uint64_t> tcp_rejected{0};
  std::atomic<std::uint64_t> tcp_idle_closed{0};

  bool allowed(const ip_address& client) {
    const std::lock_guard lock{mutex};
    return std::any_of(settings.allowed.begin(), settings.allowed.end(),
                       [&](const cidr& c) { return c.contains(client); });
  }

  std::chrono::seconds idle_timeout() {
    const std::lock_guard lock{mutex};
    return settings.tcp_idle_timeout;
  }

  bool admit_tcp(const ip_address& client) {
    const std::lock_guard lock{mutex};
    auto& mine = tcp_per_client[client];
    if (stopping || tcp_total >= settings.tcp_max || mine >= settings.tcp_max_per_client) {
      if (mine == 0) {
        tcp_per_client.erase(client);
      }
      return false;
    }
    ++mine;
    ++tcp_total;
    return true;
  }

  void release_tcp(const ip_address& client) {
    const std::lock_guard lock{mutex};
    if (auto it = tcp_per_client.find(client); it != tcp_per_client.end() && --it->second == 0) {
      tcp_per_client.erase(it);
    }
    --tcp_total;
  }
};

namespace {

using state_ptr = std::shared_ptr<dns_server::state>;

// Counts a coroutine in `active` for its whole life.
class active_guard {
 public:
  explicit active_guard(const state_ptr& st) : st_{st} { ++st_->active; }
  active_guard(const active_guard&) = delete;
  active_guard& operator=(const active_guard&) = delete;
  ~active_guard() { --st_->active; }

 private:
  state_ptr st_;
};

// The reply for a parsed query, or SERVFAIL: whatever goes wrong answering one query must
// not end the session or the loop that serves everyone else.
asio::awaitable<bytes> answer_query(const state_ptr& st, const query& q, std::size_t limit) {
  try {
    co_return co_await st->answers.answer(q, limit);
  } catch (const std::exception& e) {
    ++st->internal_errors;
    logger("dns")->error("answering {} {}: {}", q.q.name.to_string(), q.q.type, e.what());
  }
  co_return make_error_reply(q, rcode::servfail);
}

asio::awaitable<void> answer_udp(state_ptr st, std::shared_ptr<udp::socket> socket, udp::endpoint client, query q) {
  const active_guard guard{st};
  try {
    const auto reply = co_await answer_query(st, q, q.udp_limit());
    co_await socket->async_send_to(asio::buffer(reply), client, use_tuple);
  } catch (const std::exception& e) {
    logger("dns")->error("answering {}: {}", client.address().to_string(), e.what());
  }
  --st->udp_in_flight;
}

// A named coroutine, not a capturing lambda: g++ 12 destroys a lambda coroutine's captures twice.
asio::awaitable<void> send_udp_later(state_ptr st, std::shared_ptr<udp::socket> socket, udp::endpoint to, bytes reply) {
  const active_guard guard{st};
  co_await socket->async_send_to(asio::buffer(reply), to, use_tuple);
}

// Sends without waiting when the socket takes the datagram at once (nearly always); else
// hands a copy to a coroutine that waits for room.
void send_udp(const state_ptr& st, const std::shared_ptr<udp::socket>& socket, const udp::endpoint& to, bytes reply) {
  boost::system::error_code ec;
  socket->send_to(asio::buffer(reply), to, 0, ec);
  if (ec != asio::error::would_block && ec != asio::error::try_again) {
    return;  // sent, or failed as a datagram may
  }
  asio::co_spawn(socket->get_executor(), send_udp_later(st, socket, to, std::move(reply)), asio::detached);
}

// One datagram from `sender`: answered at once when the responder can, else by a coroutine
// of its own.
void handle_udp(const state_ptr& st, const std::shared_ptr<udp::socket>& socket, const udp::endpoint& sender,
                byte_view wire) {
  if (!st->allowed(from_asio(sender.address()))) {
    ++st->refused_clients;
    if (auto refusal = make_refusal(wire)) {
      send_udp(st, socket, sender, std::move(*refusal));
    }
    return;
  }
  auto parsed = parse_query(wire);
  if (std::holds_alternative<drop>(parsed)) {
    ++st->dropped;
    return;
  }
  if (auto* immediate = std::get_if<bytes>(&parsed)) {
    ++st->malformed;
    send_udp(st, socket, sender, std::move(*immediate));
    return;
  }
  auto& q = std::get<query>(parsed);
  std::optional<bytes> reply;
  try {
    reply = st->answers.answer_now(q, q.udp_limit());
  } catch (const std::exception& e) {
    ++st->internal_errors;
    logger("dns")->error("answering {} {}: {}", q.q.name.to_string(), q.q.type, e.what());
    reply = make_error_reply(q, rcode::servfail);
  }
  if (reply) {
    ++st->udp_queries;
    send_udp(st, socket, sender, std::move(*reply));
    return;
  }
  if (st->udp_in_flight.load() >= max_udp_in_flight) {
    ++st->shed;  // overloaded: the client will retry
    return;
  }
  ++st->udp_queries;
  ++st->udp_in_flight;
  asio::co_spawn(socket->get_executor(), answer_udp(st, socket, sender, std::move(q)), asio::detached);
}

asio::awaitable<void> udp_loop(state_ptr st, std::shared_ptr<udp::socket> socket) {
  const active_guard guard{st};
  // Reads without waiting until the socket is empty, and only then waits for readiness: one
  // system call per datagram under load, plus one that finds the socket empty per wake-up.
  // After max_batch datagrams in a row the loop lets the thread's other work run.
  constexpr int max_batch = 32;
  std::vector<std::uint8_t> buffer(65536);
  udp::endpoint sender;
  socket->non_blocking(true);
  int batch = 0;
  while (socket->is_open()) {
    boost::system::error_code ec;
    const auto size = socket->receive_from(asio::buffer(buffer), sender, 0, ec);
    if (ec == asio::error::would_block || ec == asio::error::try_again) {
      batch = 0;
      auto [wait_ec] = co_await socket->async_wait(udp::socket::wait_read, use_tuple);
      if (wait_ec == asio::error::operation_aborted) {
        break;
      }
      continue;
    }
    if (!ec) {  // else an ICMP error for an earlier reply, and the like
      handle_udp(st, socket, sender, byte_view{buffer.data(), size});
    }
    if (++batch == max_batch) {
      batch = 0;
      co_await asio::post(socket->get_executor(), asio::use_awaitable);
    }
  }
}

// One TCP connection: reads framed queries until the client closes or stays idle for
// dns.tcp_idle_timeout (also while trickling a message), answers each as soon as it is ready.
class tcp_session : public std::enable_shared_from_this<tcp_session> {
 public:
  tcp_session(tcp::socket socket, state_ptr st, ip_address client)
      : socket_{std::move(socket)}, st_{std::move(st)}, client_{client}, idle_{socket_.get_executor()} {}
  tcp_session(const tcp_session&) = delete;
  tcp_session& operator=(const tcp_session&) = delete;
  ~tcp_session() { st_->release_tcp(client_); }

  asio::awaitable<void> run() {
    const active_guard guard{st_};
    const auto self = shared_from_this();
    const auto id = register_closer();
    try {
      co_await read_queries();
      // Finish what was asked, and write it out, before closing (a client may half-close
      // after its last query and still read every answer).
      while ((in_flight_ > 0 || writing_ || !outbox_.empty()) && socket_.is_open()) {
        idle_.expires_after(std::chrono::milliseconds{10});
        co_await idle_.async_wait(use_tuple);
      }
    } catch (const std::exception& e) {
      logger("dns")->error("TCP client {}: {}", client_.to_string(), e.what());
    }
    boost::system::error_code ignored;
    socket_.close(ignored);
    const std::lock_guard lock{st_->mutex};
    st_->session_closers.erase(id);
  }

 private:
  std::uint64_t register_closer() {
    const std::lock_guard lock{st_->mutex};
    const auto id = st_->next_session++;
    std::weak_ptr<tcp_session> weak = weak_from_this();
    st_->session_closers.emplace(id, [weak, executor = socket_.get_executor()] {
      asio::post(executor, [weak] {
        if (auto s = weak.lock()) {
          boost::system::error_code ignored;
          s->socket_.close(ignored);
          s->idle_.cancel();
        }
      });
    });
    return id;
  }

  // Reads `buffer` whole before the idle deadline; false on timeout, EOF or error.
  asio::awaitable<bool> read_before_deadline(asio::mutable_buffer buffer) {
    auto result = co_await (asio::async_read(socket_, buffer, use_tuple) || idle_.async_wait(use_tuple));
    if (result.index() == 1) {
      ++st_->tcp_idle_closed;
      co_return false;
    }
    co_return !std::get<0>(std::get<0>(result));
  }

  asio::awaitable<void> read_queries() {
    const bool allowed = st_->allowed(client_);
    std::array<std::uint8_t, 2> length{};
    std::vector<std::uint8_t> message;
    while (socket_.is_open()) {
      while (in_flight_ + outbox_.size() >= max_tcp_backlog && socket_.is_open()) {
        idle_.expires_after(std::chrono::milliseconds{5});
        co_await idle_.async_wait(use_tuple);
      }
      idle_.expires_after(st_->idle_timeout());
      if (!co_await read_before_deadline(asio::buffer(length))) {
        co_return;
      }
      message.resize(static_cast<std::size_t>((length[0] << 8) | length[1]));
      if (message.empty() || !co_await read_before_deadline(asio::buffer(message))) {
        co_return;
      }
      if (!allowed) {
        // One REFUSED, then the connection ends: outside clients hold no slot for long.
        ++st_->refused_clients;
        if (auto refusal = make_refusal(message)) {
          send(std::move(*refusal));
        }
        co_return;
      }
      auto parsed = parse_query(message);
      if (std::holds_alternative<drop>(parsed)) {
        ++st_->dropped;
      } else if (auto* immediate = std::get_if<bytes>(&parsed)) {
        ++st_->malformed;
        send(std::move(*immediate));
      } else {
        ++st_->tcp_queries;
        ++in_flight_;
        asio::co_spawn(socket_.get_executor(), answer(std::move(std::get<query>(parsed))), asio::detached);
      }
    }
  }

  asio::awaitable<void> answer(query q) {
    const auto self = shared_from_this();
    try {
      send(co_await answer_query(st_, q, 65535));
    } catch (const std::exception& e) {
      logger("dns")->error("TCP client {}: {}", client_.to_string(), e.what());
    }
    --in_flight_;
  }

  // Queues a reply; one writer at a time (everything here runs on the session's thread).
  void send(bytes reply) {
    outbox_.push_back(std::move(reply));
    if (!writing_) {
      writing_ = true;
      asio::co_spawn(socket_.get_executor(), write_all(shared_from_this()), asio::detached);
    }
  }

  static asio::awaitable<void> write_all(std::shared_ptr<tcp_session> self) {
    while (!self->outbox_.empty() && self->socket_.is_open()) {
      const auto reply = std::move(self->outbox_.front());
      self->outbox_.pop_front();
      const std::array<std::uint8_t, 2> prefix{static_cast<std::uint8_t>(reply.size() >> 8),
                                               static_cast<std::uint8_t>(reply.size())};
      const std::array<asio::const_buffer, 2> framed{asio::buffer(prefix), asio::buffer(reply)};
      if (auto [ec, n] = co_await asio::async_write(self->socket_, framed, use_tuple); ec) {
        boost::system::error_code ignored;
        self->socket_.close(ignored);
        break;
      }
    }
    self->writing_ = false;
  }

  tcp::socket socket_;
  state_ptr st_;
  ip_address client_;
  asio::steady_timer idle_;
  std::deque<bytes> outbox_;
  bool writing_ = false;
  unsigned in_flight_ = 0;
};

asio::awaitable<void> tcp_accept_loop(state_ptr st, std::shared_ptr<tcp::acceptor> acceptor) {
  const active_guard guard{st};
  auto executor = co_await asio::this_coro::executor;
  while (true) {
    auto [ec, socket] = co_await acceptor->async_accept(use_tuple);
    if (ec == asio::error::operation_aborted || !acceptor->is_open()) {
      break;
    }
    if (ec) {
      // EMFILE and friends: pause instead of spinning.
      asio::steady_timer pause{executor, std::chrono::milliseconds{50}};
      co_await pause.async_wait(use_tuple);
      continue;
    }
    boost::system::error_code peer_ec;
    const auto peer = socket.remote_endpoint(peer_ec);
    if (peer_ec) {
      continue;
    }
    const auto client = from_asio(peer.address());
    if (!st->admit_tcp(client)) {
      ++st->tcp_rejected;
      continue;  // the socket closes as it goes out of scope
    }
    ++st->tcp_connections;
    auto session = std::make_shared<tcp_session>(std::move(socket), st, client);
    asio::co_spawn(executor, session->run(), asio::detached);
  }
}

}  // namespace

struct dns_server::listener {
  asio::io_context& context;
  std::shared_ptr<udp::socket> udp_socket;
  std::shared_ptr<tcp::acceptor> tcp_acceptor;
};

dns_server::dns_server(worker_pool& workers, responder& answers, server_settings settings)
    : workers_{workers}, state_{std::make_shared<state>(answers, std::move(settings))} {}

dns_server::~dns_server() {
  for (auto& [at, group] : listeners_) {
    for (auto& l : group) {
      asio::post(l->context, [l] {
        boost::system::error_code ignored;
        l->udp_socket->close(ignored);
        l->tcp_acceptor->close(ignored);
      });
    }
  }
}

void dns_server::listen(const endpoint& at) {
  if (listeners_.contains(at)) {
    return;
  }
  std::vector<std::shared_ptr<listener>> group;
  for (std::size_t i = 0; i < workers_.size(); ++i) {
    auto& context = workers_.context(i);
    auto udp_socket = std::make_shared<udp::socket>(context);
    const auto udp_at = to_asio_endpoint<udp>(at);
    udp_socket->open(udp_at.protocol());
    udp_socket->set_option(reuse_port{true});
    if (at.address.is_v6()) {
      udp_socket->set_option(asio::ip::v6_only{true});
    }
    udp_socket->bind(udp_at);

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
    group.push_back(std::make_shared<listener>(listener{context, std::move(udp_socket), std::move(acceptor)}));
  }
  for (const auto& l : group) {
    asio::co_spawn(l->context, udp_loop(state_, l->udp_socket), asio::detached);
    asio::co_spawn(l->context, tcp_accept_loop(state_, l->tcp_acceptor), asio::detached);
  }
  listeners_.emplace(at, std::move(group));
  logger("dns")->info("serving DNS on {} (UDP and TCP, {} sockets each)", at.to_string(), workers_.size());
}

void dns_server::close(const endpoint& at) {
  const auto it = listeners_.find(at);
  if (it == listeners_.end()) {
    return;
  }
  for (auto& l : it->second) {
    asio::post(l->context, [l] {
      boost::system::error_code ignored;
      l->udp_socket->close(ignored);
      l->tcp_acceptor->close(ignored);
    });
  }
  listeners_.erase(it);
  logger("dns")->info("no longer serving DNS on {}", at.to_string());
}

std::vector<endpoint> dns_server::endpoints() const {
  std::vector<endpoint> out;
  for (const auto& [at, group] : listeners_) {
    out.push_back(at);
  }
  return out;
}

void dns_server::reconfigure(const server_settings& settings) {
  const std::lock_guard lock{state_->mutex};
  state_->settings.tcp_idle_timeout = settings.tcp_idle_timeout;
  state_->settings.tcp_max_per_client = settings.tcp_max_per_client;
  state_->settings.tcp_max = settings.tcp_max;
}

asio::awaitable<void> dns_server::stop() {
  for (const auto& at : endpoints()) {
    close(at);
  }
  std::vector<std::function<void()>> closers;
  {
    const std::lock_guard lock{state_->mutex};
    state_->stopping = true;
    for (auto& [id, closer] : state_->session_closers) {
      closers.push_back(closer);
    }
  }
  for (auto& closer : closers) {
    closer();
  }
  // Sessions end within a round trip of their thread; in-flight upstream queries within the
  // resolver's timeout. Bounded either way.
  asio::steady_timer wait{co_await asio::this_coro::executor};
  for (int i = 0; i < 1000 && state_->active.load() > 0; ++i) {
    wait.expires_after(std::chrono::milliseconds{10});
    co_await wait.async_wait(use_tuple);
  }
}

std::vector<counter> dns_server::counters() const {
  const auto& s = *state_;
  return {{"udp_queries", s.udp_queries.load()},
          {"tcp_queries", s.tcp_queries.load()},
          {"refused_clients", s.refused_clients.load()},
          {"malformed", s.malformed.load()},
          {"dropped", s.dropped.load()},
          {"internal_errors", s.internal_errors.load()},
          {"tcp_connections", s.tcp_connections.load()},
          {"tcp_rejected", s.tcp_rejected.load()},
          {"tcp_idle_closed", s.tcp_idle_closed.load()}};
}

}  // namespace gate46::dns
