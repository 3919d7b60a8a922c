#include "gate46/dns/resolver.hpp"

#include <sodium.h>

#include <algorithm>
#include <array>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ip/udp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include "gate46/common/asio_address.hpp"
#include "gate46/common/log.hpp"

namespace gate46::dns {
namespace asio = boost::asio;
using namespace boost::asio::experimental::awaitable_operators;
using std::chrono::steady_clock;

namespace {

constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);
// How long an upstream that timed out is tried after the others.
constexpr std::chrono::seconds upstream_penalty{30};

class resolve_error_category final : public std::error_category {
 public:
  [[nodiscard]] const char* name() const noexcept override { return "gate46.resolve"; }
  [[nodiscard]] std::string message(int value) const override {
    switch (static_cast<resolve_errc>(value)) {
      case resolve_errc::timeout:
        return "no upstream resolver answered in time";
      case resolve_errc::nxdomain:
        return "the name does not exist";
      case resolve_errc::nodata:
        return "the name has no address of that family";
      case resolve_errc::servfail:
        return "the upstream resolver failed";
    }
    return "unknown resolver error";
  }
};

std::uint16_t random_id() {
  return static_cast<std::uint16_t>(randombytes_uniform(65536));
}

enum class outcome : std::uint8_t { answered, ignored_only, failed };

// One query to one upstream over UDP within `timeout`. Datagrams that are not the answer are
// counted in `ignored` and waited past; a connected socket never sees other sources.
asio::awaitable<std::optional<answer>> udp_exchange(const endpoint& upstream, const question& q, query_flags flags,
                                                    std::chrono::milliseconds timeout, std::uint64_t& ignored) {
  auto executor = co_await asio::this_coro::executor;
  const auto target = to_asio_endpoint<asio::ip::udp>(upstream);
  asio::ip::udp::socket socket{executor};
  boost::system::error_code ec;
  socket.open(target.protocol(), ec);
  if (!ec) {
    socket.connect(target, ec);  // binds a random ephemeral source port too
  }
  if (ec) {
    logger("dns")->warn("upstream {}: {}", upstream.to_string(), ec.message());
    co_return std::nullopt;
  }
  const auto id = random_id();
  const auto wire = make_upstream_query(q, id, flags.checking_disabled, flags.dnssec_ok);
  asio::steady_timer deadline{executor, timeout};
  if (auto [send_ec, sent] = co_await socket.async_send(asio::buffer(wire), use_tuple); send_ec) {
    co_return std::nullopt;
  }
  // We advertise 1232 bytes; a datagram beyond this buffer is cut, fails to parse and is
  // ignored like any other bad answer. Small buffers keep a flood of queries cheap.
  std::vector<std::uint8_t> buffer(4096);
  while (true) {
    auto first = co_await (socket.async_receive(asio::buffer(buffer), use_tuple) || deadline.async_wait(use_tuple));
    if (first.index() == 1) {
      co_return std::nullopt;  // timed out
    }
    auto [receive_ec, size] = std::get<0>(first);
    if (receive_ec) {
      co_return std::nullopt;  // e.g. ECONNREFUSED: nothing listens there
    }
    if (auto a = accept_upstream_answer({buffer.data(), size}, id, q)) {
      co_return a;
    }
    ++ignored;
  }
}

// The same over TCP (after a truncated UDP answer), RFC 7766 framing.
asio::awaitable<std::optional<answer>> tcp_exchange(const endpoint& upstream, const question& q, query_flags flags,
                                                    std::chrono::milliseconds timeout) {
  auto executor = co_await asio::this_coro::executor;
  asio::ip::tcp::socket socket{executor};
  asio::steady_timer deadline{executor, timeout};
  const auto connected = co_await (socket.async_connect(to_asio_endpoint<asio::ip::tcp>(upstream), use_tuple) ||
                                   deadline.async_wait(use_tuple));
  if (connected.index() == 1 || std::get<0>(std::get<0>(connected))) {
    co_return std::nullopt;
  }
  const auto id = random_id();
  const auto wire = make_upstream_query(q, id, flags.checking_disabled, flags.dnssec_ok);
  const std::array<std::uint8_t, 2> prefix{static_cast<std::uint8_t>(wire.size() >> 8),
                                           static_cast<std::uint8_t>(wire.size())};
  const std::array<asio::const_buffer, 2> framed{asio::buffer(prefix), asio::buffer(wire)};
  const auto written = co_await (asio::async_write(socket, framed, use_tuple) || deadline.async_wait(use_tuple));
  if (written.index() == 1 || std::get<0>(std::get<0>(written))) {
    co_return std::nullopt;
  }
  std::array<std::uint8_t, 2> length{};
  const auto got_length =
      co_await (asio::async_read(socket, asio::buffer(length), use_tuple) || deadline.async_wait(use_tuple));
  if (got_length.index() == 1 || std::get<0>(std::get<0>(got_length))) {
    co_return std::nullopt;
  }
  std::vector<std::uint8_t> message((length[0] << 8) | length[1]);
  const auto got =
      co_await (asio::async_read(socket, asio::buffer(message), use_tuple) || deadline.async_wait(use_tuple));
  if (got.index() == 1 || std::get<0>(std::get<0>(got))) {
    co_return std::nullopt;
  }
  co_return accept_upstream_answer(message, id, q);
}

}  // namespace

const std::error_category& resolve_category() noexcept {
  static const resolve_error_category category;
  return category;
}

std::error_code make_error_code(resolve_errc e) noexcept {
  return {static_cast<int>(e), resolve_category()};
}

// ---- cache -------------------------------------------------------------------------------------

answer_cache::answer_cache(std::size_t max_entries, std::size_t max_bytes)
    : max_entries_{std::max<std::size_t>(1, max_entries)}, max_bytes_{max_bytes} {}

void answer_cache::key_of(const question& q, query_flags flags, std::string& key) {
  key.assign(q.name.wire_view());
  key.push_back(static_cast<char>((flags.checking_disabled ? 1 : 0) | (flags.dnssec_ok ? 2 : 0)));
  key.push_back(static_cast<char>(q.type >> 8));
  key.push_back(static_cast<char>(q.type));
  key.push_back(static_cast<char>(q.qclass >> 8));
  key.push_back(static_cast<char>(q.qclass));
}

std::optional<timed_answer> answer_cache::get(const question& q, steady_clock::time_point now, query_flags flags) {
  // Most names are longer than the small-string buffer: one key buffer per thread, reused.
  thread_local std::string key;
  key_of(q, flags, key);
  const std::lock_guard lock{mutex_};
  const auto it = index_.find(key);
  if (it == index_.end()) {
    return std::nullopt;
  }
  auto& e = *it->second;
  if (e.expires <= now) {
    bytes_ -= e.a->wire.size();
    lru_.erase(it->second);
    index_.erase(it);
    return std::nullopt;
  }
  // Least recently used to within a few seconds: moving the entry at every hit writes to its
  // neighbours too, and on a busy resolver that costs more than the order is worth.
  constexpr auto move_interval = std::chrono::seconds{5};
  if (now - e.moved >= move_interval) {
    e.moved = now;
    lru_.splice(lru_.begin(), lru_, it->second);
  }
  return timed_answer{e.a, std::chrono::duration_cast<std::chrono::seconds>(now - e.stored)};
}

void answer_cache::put(const question& q, std::shared_ptr<const answer> a, steady_clock::time_point now,
                       query_flags flags) {
  if (a->cache_ttl.count() <= 0 || a->wire.size() > max_bytes_) {
    return;
  }
  std::string key;
  key_of(q, flags, key);
  const auto expires = now + a->cache_ttl;
  const std::lock_guard lock{mutex_};
  if (const auto it = index_.find(key); it != index_.end()) {
    bytes_ -= it->second->a->wire.size();
    lru_.erase(it->second);
    index_.erase(it);
  }
  bytes_ += a->wire.size();
  lru_.push_front(entry{key, std::move(a), now, expires, now});
  index_.emplace(std::move(key), lru_.begin());
  while (lru_.size() > max_entries_ || bytes_ > max_bytes_) {
    bytes_ -= lru_.back().a->wire.size();
    index_.erase(lru_.back().key);
    lru_.pop_back();
  }
}

std::size_t answer_cache::size() const {
  const std::lock_guard lock{mutex_};
  return lru_.size();
}

// ---- resolver ----------------------------------------------------------------------------------

upstream_resolver::upstream_resolver(upstream_settings settings, std::size_t cache_entries)
    : settings_{std::make_shared<const upstream_settings>(std::move(settings))}, cache_{cache_entries} {
  if (sodium_init() < 0) {
    throw std::runtime_error{"libsodium failed to initialise"};
  }
}

void upstream_resolver::reconfigure(upstream_settings settings) {
  const std::lock_guard lock{mutex_};
  settings_ = std::make_shared<const upstream_settings>(std::move(settings));
}

upstream_resolver::counters upstream_resolver::stats() const {
  const std::lock_guard lock{mutex_};
  auto out = counters_;
  out.cache_hits = cache_hits_.load();
  return out;
}

std::optional<timed_answer> upstream_resolver::cached(const question& q, query_flags flags) {
  auto hit = cache_.get(q, steady_clock::now(), flags);
  if (hit) {
    ++cache_hits_;
  }
  return hit;
}

asio::awaitable<result<timed_answer>> upstream_resolver::query(question q, query_flags flags) {
  if (auto hit = cached(q, flags)) {
    co_return *hit;
  }
  auto fresh = co_await exchange(q, flags);
  if (!fresh) {
    co_return fresh.error();
  }
  cache_.put(q, *fresh, steady_clock::now(), flags);
  co_return timed_answer{*fresh, std::chrono::seconds{0}};
}

// dns.upstream_tries attempts, each to the next upstream in turn, each within
// dns.upstream_timeout_ms; a truncated UDP answer is asked again over TCP.
asio::awaitable<result<std::shared_ptr<const answer>>> upstream_resolver::exchange(const question& q,
                                                                                   query_flags flags) {
  std::shared_ptr<const upstream_settings> settings;
  std::vector<std::size_t> order;  // indexes into settings->upstreams, in the order to try them
  {
    const std::lock_guard lock{mutex_};
    settings = settings_;
    const auto count = settings->upstreams.size();
    const auto first = next_upstream_++;
    for (std::size_t i = 0; i < count; ++i) {
      order.push_back((first + i) % count);
    }
    // Upstreams that timed out lately go last: one dead upstream must not cost every other
    // query a full timeout. They are still tried when the others fail.
    const auto now = steady_clock::now();
    std::stable_partition(order.begin(), order.end(), [&](std::size_t i) {
      const auto it = failed_until_.find(settings->upstreams[i]);
      return it == failed_until_.end() || it->second <= now;
    });
  }
  for (unsigned attempt = 0; attempt < settings->tries && !order.empty(); ++attempt) {
    const auto& upstream = settings->upstreams[order[attempt % order.size()]];
    std::uint64_t ignored = 0;
    auto a = co_await udp_exchange(upstream, q, flags, settings->timeout, ignored);
    bool fell_back = false;
    if (a && a->truncated) {
      fell_back = true;
      if (auto over_tcp = co_await tcp_exchange(upstream, q, flags, settings->timeout)) {
        a = std::move(over_tcp);
      }
    }
    {
      const std::lock_guard lock{mutex_};
      ++counters_.upstream_queries;
      counters_.ignored_answers += ignored;
      counters_.tcp_fallbacks += fell_back ? 1 : 0;
      counters_.upstream_timeouts += a ? 0 : 1;
      if (a) {
        failed_until_.erase(upstream);
      } else {
        failed_until_[upstream] = steady_clock::now() + upstream_penalty;
      }
    }
    if (a) {
      co_return std::make_shared<const answer>(std::move(*a));
    }
  }
  co_return make_error_code(resolve_errc::timeout);
}

asio::awaitable<result<std::vector<ip_address>>> upstream_resolver::resolve(dns_name name, ip_family family) {
  const question q{std::move(name), family == ip_family::v4 ? rr_type::a : rr_type::aaaa, class_in};
  auto r = co_await query(q, {});
  if (!r) {
    co_return r.error();
  }
  const auto& a = *r->a;
  if (a.code == rcode::nxdomain) {
    co_return make_error_code(resolve_errc::nxdomain);
  }
  if (a.code != rcode::noerror) {
    co_return make_error_code(resolve_errc::servfail);
  }
  auto addresses = addresses_in(a, family);
  if (addresses.empty()) {
    co_return make_error_code(resolve_errc::nodata);
  }
  co_return addresses;
}

}  // namespace gate46::dns
