#include "transparent_udp.hpp"

#include <sys/socket.h>
#include <sys/uio.h>

#include <array>
#include <atomic>
#include <cerrno>
#include <cstddef>
#include <cstring>
#include <deque>
#include <exception>
#include <mutex>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/ip/udp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "destination.hpp"
#include "gate46/common/asio_address.hpp"
#include "gate46/common/log.hpp"
#include "gate46/gateway/access.hpp"
#include "gate46/gateway/connector.hpp"
#include "gate46/gateway/udp_sessions.hpp"
#include "gate46/tproxy/transparent.hpp"
#include "session_registry.hpp"

namespace gate46::gateway {
namespace asio = boost::asio;
using asio::ip::udp;
using boost::system::error_code;
using steady = std::chrono::steady_clock;

namespace {

constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);

// The largest UDP payload, plus one byte: a datagram that fills the buffer was longer than the
// buffer and arrived cut short.
constexpr std::size_t datagram_buffer_bytes = std::size_t{64} * 1024 + 1;
// Datagrams kept while a session resolves its name and opens its sockets.
constexpr std::size_t setup_queue_datagrams = 32;
// Datagrams one socket handles before letting the thread's other work run.
constexpr int datagrams_per_turn = 64;
// Datagrams one recvmmsg/sendmmsg moves. Every slot must hold the largest datagram (a cut one is
// never delivered), so the worker's batch is 32 x (64 KiB + 1) = 2 MiB per worker thread: address
// space more than memory (a 1200-byte datagram touches one page of its slot; pages stay resident
// once touched), few threads (daemon.threads), and it halves the calls of a 64-datagram turn
// against 16. A call returns what is queued, so a larger batch costs nothing when fewer wait.
constexpr std::size_t batch_datagrams = 32;
static_assert(static_cast<std::size_t>(datagrams_per_turn) % batch_datagrams == 0);
// SO_RCVBUF asked for every socket that receives datagrams (the kernel caps it at
// net.core.rmem_max, then doubles it for its bookkeeping). The default (net.core.rmem_default,
// 208 KiB: about 90 datagrams of 1200 bytes) is 1.5 ms of a 700 Mbit/s flow: any longer wait for
// a core and the kernel drops. A limit, not an allocation: memory is used only while queued.
constexpr int receive_buffer_bytes = 1 << 20;

using counter_t = std::atomic<std::uint64_t>;

void add(counter_t& c, std::uint64_t n = 1) noexcept {
  c.fetch_add(n, std::memory_order_relaxed);
}

// The buffers of one recvmmsg and the sendmmsg that passes it on. Nothing awaits between the two,
// so the sessions of a worker's thread share one.
struct datagram_batch {
  datagram_batch() : data(batch_datagrams * datagram_buffer_bytes) {
    for (std::size_t i = 0; i < batch_datagrams; ++i) {
      in_iov[i] = {data.data() + i * datagram_buffer_bytes, datagram_buffer_bytes};
    }
  }
  std::vector<std::byte> data;
  std::array<iovec, batch_datagrams> in_iov{};
  std::array<mmsghdr, batch_datagrams> in{};
  std::array<sockaddr_storage, batch_datagrams> names{};
  std::array<iovec, batch_datagrams> out_iov{};
  std::array<mmsghdr, batch_datagrams> out{};
  std::size_t out_count = 0;

  [[nodiscard]] std::span<const std::byte> received(std::size_t i) const {
    return {static_cast<const std::byte*>(in_iov[i].iov_base), in[i].msg_len};
  }
  // recvmmsg(MSG_DONTWAIT) into every slot, with each sender's address if `with_names`.
  // Returns how many arrived (>= 1), or 0 and `ec` (would_block when none is queued).
  std::size_t receive(int fd, bool with_names, error_code& ec) {
    for (std::size_t i = 0; i < batch_datagrams; ++i) {
      auto& h = in[i].msg_hdr;
      h = msghdr{};  // the kernel writes msg_namelen and msg_flags back
      h.msg_iov = &in_iov[i];
      h.msg_iovlen = 1;
      if (with_names) {
        h.msg_name = &names[i];
        h.msg_namelen = sizeof names[i];
      }
      in[i].msg_len = 0;
    }
    out_count = 0;
    const int n = ::recvmmsg(fd, in.data(), batch_datagrams, MSG_DONTWAIT, nullptr);
    if (n <= 0) {
      ec = error_code{n < 0 ? errno : EIO, boost::system::system_category()};
      return 0;
    }
    // An error after the first datagram ends the batch; the kernel keeps it (sk_err) for the next
    // call.
    return static_cast<std::size_t>(n);
  }
  // Adds received datagram `i` to what send() passes on.
  void keep(std::size_t i) {
    out_iov[out_count] = {in_iov[i].iov_base, in[i].msg_len};
    out[out_count].msg_hdr = msghdr{};
    out[out_count].msg_hdr.msg_iov = &out_iov[out_count];
    out[out_count].msg_hdr.msg_iovlen = 1;
    ++out_count;
  }

  struct sent_t {
    std::uint64_t datagrams = 0;
    std::uint64_t bytes = 0;
    std::uint64_t refused = 0;  // ECONNREFUSED: an earlier datagram drew an ICMP port unreachable
    std::uint64_t dropped = 0;  // a socket buffer full or another send error
  };
  // sendmmsg of the kept datagrams on connected socket `fd`.
  sent_t send(int fd) {
    sent_t r;
    std::size_t pos = 0;
    while (pos < out_count) {
      const int n = ::sendmmsg(fd, &out[pos], static_cast<unsigned>(out_count - pos), MSG_DONTWAIT);
      if (n > 0) {
        for (const auto end = pos + static_cast<std::size_t>(n); pos < end; ++pos) {
          r.bytes += out_iov[pos].iov_len;
        }
        r.datagrams += static_cast<std::uint64_t>(n);
        // Short of the batch: the kernel kept the error of the first unsent datagram to itself
        // (it reports one only when nothing was sent); the next call starts with that datagram
        // and gets a lasting error again, or sends it if the error was a one-off.
        continue;
      }
      const int error = n < 0 ? errno : EIO;
      if (error == EAGAIN || error == EWOULDBLOCK) {
        // The socket buffer is full: the rest would fail the same way, one call each.
        r.dropped += out_count - pos;
        break;
      }
      // The error belongs to this datagram alone (an ICMP report is consumed by the send it
      // fails): the rest may go. Each call moves at least one datagram on, so this ends.
      ++(error == ECONNREFUSED ? r.refused : r.dropped);
      ++pos;
    }
    out_count = 0;
    return r;
  }
};

}  // namespace

struct transparent_udp_relay::state {
  state(dns::resolver& r, mapping::mapping_store& s, flow_limit& f, const transparent_settings& settings)
      : resolver{r},
        store{s},
        flows{f},
        destinations{settings.deny, settings.pool_v4, settings.pool_v6},
        current{std::make_shared<const transparent_settings>(settings)} {}

  dns::resolver& resolver;
  mapping::mapping_store& store;
  flow_limit& flows;  // gateway.max_flows, shared with TCP
  destination_policy destinations;
  session_registry sessions;

  mutable std::mutex limits_mutex;  // guards limits: one client's sessions may be on any worker
  udp_session_limits limits;

  mutable std::mutex settings_mutex;  // guards current
  std::shared_ptr<const transparent_settings> current;

  std::atomic<std::uint64_t> active{0};  // sessions and receive loops still running

  counter_t sessions_created{0};
  counter_t datagrams_up{0};
  counter_t datagrams_down{0};
  counter_t bytes_up{0};
  counter_t bytes_down{0};
  counter_t dropped_not_fake{0};
  counter_t dropped_unmapped{0};
  counter_t dropped_unresolved{0};
  counter_t dropped_denied{0};
  counter_t dropped_no_destination{0};  // the kernel attached no original destination
  counter_t dropped_truncated{0};
  counter_t dropped_queue_full{0};
  counter_t dropped_send{0};   // a socket buffer full or a send error
  counter_t dropped_setup{0};  // a session whose sockets could not be opened
  counter_t refused_per_client{0};
  counter_t refused_max{0};
  counter_t refused_max_flows{0};
  counter_t icmp_errors{0};  // ECONNREFUSED from the target
  counter_t idle_timeouts{0};
  counter_t client_gone{0};   // the client's side reported an ICMP error: session ended
  counter_t misdelivered{0};  // another client's datagram on a reply socket, passed on
  log_throttle refusal_log;
  log_throttle failure_log;

  std::shared_ptr<const transparent_settings> settings() const {
    const std::lock_guard lock{settings_mutex};
    return current;
  }

  udp_admission admit(const ip_address& client, const transparent_settings& s) {
    const std::lock_guard lock{limits_mutex};
    return limits.admit(client, s.udp_sessions_per_client, s.udp_sessions_max);
  }
  void release_limits(const ip_address& client) {
    const std::lock_guard lock{limits_mutex};
    limits.release(client);
  }
  // A session's end: its place under the session limits and in gateway.max_flows.
  void release(const ip_address& client) {
    flows.release();
    release_limits(client);
  }
};

namespace {

using state_ptr = std::shared_ptr<transparent_udp_relay::state>;

class udp_session;

}  // namespace

// One worker thread's share: its listening socket and its receive buffer, the batch its
// sessions' sockets read into (nothing awaits between a receive and the send that passes it on),
// and the sessions this thread relays. Touched only on the worker's thread.
struct transparent_udp_relay::worker {
  explicit worker(udp::socket s)
      : listener{std::move(s)}, buffer(datagram_buffer_bytes), batch{std::make_unique<datagram_batch>()} {}
  udp::socket listener;
  std::vector<std::byte> buffer;
  std::unique_ptr<datagram_batch> batch;
  std::unordered_map<udp_flow_key, std::shared_ptr<udp_session>, udp_flow_key_hash> sessions;
};

namespace {

using worker_ptr = std::shared_ptr<transparent_udp_relay::worker>;

// A datagram from `key.client` to `key.destination`: to its session on this worker, or the
// first of a new one. Defined below.
void dispatch(const state_ptr& st, const worker_ptr& w, const udp_flow_key& key, std::span<const std::byte> data);

// One session: set up by run(), then three coroutines until one ends it: client -> target,
// target -> client, and the watchdog (idle expiry, hold renewal).
class udp_session final : public relay_flow, public std::enable_shared_from_this<udp_session> {
 public:
  udp_session(state_ptr st, worker_ptr w, udp_flow_key key, dns_name name)
      : st_{std::move(st)},
        worker_{std::move(w)},
        key_{key},
        name_{std::move(name)},
        upstream_{worker_->listener.get_executor()},
        reply_{worker_->listener.get_executor()},
        timer_{worker_->listener.get_executor()} {}

  void set_id(std::uint64_t id) noexcept { id_ = id; }

  void abort() override {
    asio::post(timer_.get_executor(), [self = shared_from_this()] { self->close(); });
  }
  [[nodiscard]] relay_progress progress() const noexcept override {
    return {up_.load(std::memory_order_relaxed), down_.load(std::memory_order_relaxed)};
  }

  // A datagram of this session that reached the listener (the first one, those sent while the
  // session is set up, and any queued on the listener before the reply socket was connected).
  void from_listener(std::span<const std::byte> data) {
    if (ended_) {
      add(st_->dropped_send);
      return;
    }
    if (relaying_) {
      send_up(data);
      return;
    }
    if (queue_.size() >= setup_queue_datagrams) {
      add(st_->dropped_queue_full);
      return;
    }
    queue_.emplace_back(data.begin(), data.end());
  }

  asio::awaitable<void> run() {
    using namespace asio::experimental::awaitable_operators;
    // The worker's map holds the session until end() erases it; the coroutine must outlive that.
    const auto self = shared_from_this();
    const active_guard guard{st_};
    try {
      if (co_await set_up()) {
        co_await (pump_up() || pump_down() || watchdog());
      }
    } catch (const std::exception& e) {
      logger("relay")->error("udp {} -> {}: {}", key_.client.to_string(), key_.destination.to_string(), e.what());
    }
    close();
    end();
  }

 private:
  asio::awaitable<bool> set_up() {
    const auto settings = st_->settings();
    idle_timeout_ =
        udp_idle_timeout_for(key_.destination.port, settings->udp_idle_timeout, settings->udp_dns_idle_timeout);
    // The session holds its mapping from the start: the lease may not run out under it.
    st_->store.hold(key_.destination.address, settings->hold_ttl);
    last_hold_ = steady::now();
    const auto target = co_await resolve_destination(st_->resolver, st_->destinations, name_);
    if (ended_) {
      co_return false;  // stopped meanwhile
    }
    const auto address = pick_udp_target(target.v6, target.v4, settings->connect.prefer);
    if (!address) {
      add(target.had_addresses ? st_->dropped_denied : st_->dropped_unresolved, queue_.size());
      if (st_->failure_log.allow()) {
        logger("relay")->info(
            "udp {} -> {}: dropped: {}", key_.client.to_string(), key_.destination.to_string(),
            name_.to_string() + (target.had_addresses ? ": every address is refused" : ": does not resolve"));
      }
      co_return false;
    }
    target_ = endpoint{*address, key_.destination.port};
    if (const auto ec = open_sockets(settings->connect.bypass_mark)) {
      add(st_->dropped_setup, queue_.size());
      if (st_->failure_log.allow()) {
        logger("relay")->warn("udp {} -> {} ({}): {}", key_.client.to_string(), key_.destination.to_string(),
                              target_.to_string(), ec.message());
      }
      co_return false;
    }
    relaying_ = true;
    for (const auto& datagram : queue_) {
      send_up(datagram);
    }
    queue_ = {};
    track_relay(st_->sessions, id_, shared_from_this(),
                {key_.client, "udp " + key_.destination.to_string(), name_.to_string(), target_});
    co_return !ended_;
  }

  error_code open_sockets(std::uint32_t mark) {
    error_code ec;
    const auto to = to_asio_endpoint<udp>(target_);
    upstream_.open(to.protocol(), ec);
    if (!ec) {
      ec = set_bypass_mark(upstream_.native_handle(), mark);
    }
    if (!ec) {
      upstream_.set_option(udp::socket::receive_buffer_size{receive_buffer_bytes}, ec);
    }
    if (!ec) {
      upstream_.non_blocking(true, ec);
    }
    if (!ec) {
      upstream_.connect(to, ec);
    }
    if (ec) {
      return ec;
    }
    try {
      reply_ = tproxy::open_transparent_udp_from(upstream_.get_executor(), key_.destination);
    } catch (const boost::system::system_error& e) {
      return e.code();
    }
    reply_.set_option(udp::socket::receive_buffer_size{receive_buffer_bytes}, ec);
    if (!ec) {
      reply_.non_blocking(true, ec);
    }
    if (!ec) {
      // From now on TPROXY hands this client's datagrams to the reply socket, not the listener.
      reply_.connect(to_asio_endpoint<udp>(key_.client), ec);
    }
    return ec;
  }

  void send_up(std::span<const std::byte> data) {
    error_code ec;
    upstream_.send(asio::buffer(data.data(), data.size()), 0, ec);
    if (ec == asio::error::connection_refused) {
      // An earlier datagram drew an ICMP port unreachable; this one is lost with the report.
      add(st_->icmp_errors);
      return;
    }
    if (ec) {
      add(st_->dropped_send);
      return;
    }
    last_activity_ = steady::now();
    add(st_->datagrams_up);
    add(st_->bytes_up, data.size());
    up_.fetch_add(data.size(), std::memory_order_relaxed);
  }

  // Reads `from` (reply_ or upstream_) in batches and passes each batch to the other socket
  // with one sendmmsg; waits for readiness only after the kernel said EAGAIN or returned a short
  // batch, and yields after a bounded number of datagrams. Returns the first receive error other
  // than would_block (operation_aborted once closed).
  asio::awaitable<error_code> drain_socket(udp::socket& from) {
    const bool up = &from == &reply_;
    auto& batch = *worker_->batch;
    for (std::size_t handled = 0; handled < static_cast<std::size_t>(datagrams_per_turn);) {
      if (ended_) {
        co_return asio::error::operation_aborted;
      }
      error_code ec;
      // Only the reply socket needs senders: it may hold other clients' datagrams.
      const auto n = batch.receive(from.native_handle(), up, ec);
      if (ec == asio::error::would_block) {
        co_return co_await wait_readable(from);
      }
      if (ec) {
        co_return ec;
      }
      handled += n;
      if (up) {
        relay_up(batch, n);
      } else {
        relay_down(batch, n);
      }
      if (n < batch_datagrams) {
        // The queue ran dry or an error (ICMP) came during the call: another call would only
        // say EAGAIN, or the error, whose wakeup also came during the call. Either way what
        // arrived since recvmmsg looked raises an epoll event that only this io_context's one
        // thread could consume, and not before the wait is queued: no edge is lost.
        co_return co_await wait_readable(from);
      }
    }
    co_await asio::post(from.get_executor(), asio::use_awaitable);
    co_return error_code{};
  }

  asio::awaitable<error_code> wait_readable(udp::socket& s) const {
    auto [ec] = co_await s.async_wait(udp::socket::wait_read, use_tuple);
    if (ec || ended_) {
      co_return ec ? ec : asio::error::operation_aborted;
    }
    co_return error_code{};
  }

  // True (and counted) when datagram `i` of the batch filled its slot: it arrived cut short.
  bool truncated(const datagram_batch& batch, std::size_t i) {
    if (batch.in[i].msg_len >= datagram_buffer_bytes || (batch.in[i].msg_hdr.msg_flags & MSG_TRUNC) != 0) {
      add(st_->dropped_truncated);
      return true;
    }
    return false;
  }

  // Client -> target. Datagrams from other clients of the same fake address and port can be
  // queued on the reply socket from the moments between its bind and its connect (connect does
  // not filter what is already queued): those go to their own sessions.
  void relay_up(datagram_batch& batch, std::size_t n) {
    std::vector<std::pair<endpoint, std::vector<std::byte>>> others;
    for (std::size_t i = 0; i < n; ++i) {
      if (truncated(batch, i)) {
        continue;
      }
      udp::endpoint sender;
      const auto length = std::min<std::size_t>(batch.in[i].msg_hdr.msg_namelen, sizeof batch.names[i]);
      std::memcpy(sender.data(), &batch.names[i], length);
      sender.resize(length);
      if (const auto from = from_asio_endpoint(sender); from == key_.client) {
        batch.keep(i);
      } else {
        // Copied: a session dispatch() starts may run at once and receive into this batch.
        const auto d = batch.received(i);
        others.emplace_back(from, std::vector<std::byte>{d.begin(), d.end()});
      }
    }
    const auto r = batch.send(upstream_.native_handle());
    add(st_->icmp_errors, r.refused);
    add(st_->dropped_send, r.dropped);
    if (r.datagrams != 0) {
      last_activity_ = steady::now();
      add(st_->datagrams_up, r.datagrams);
      add(st_->bytes_up, r.bytes);
      up_.fetch_add(r.bytes, std::memory_order_relaxed);
    }
    for (const auto& [from, d] : others) {
      add(st_->misdelivered);
      dispatch(st_, worker_, udp_flow_key{from, key_.destination}, d);
    }
  }

  // Target -> client.
  void relay_down(datagram_batch& batch, std::size_t n) {
    for (std::size_t i = 0; i < n; ++i) {
      if (!truncated(batch, i)) {
        batch.keep(i);
      }
    }
    const auto r = batch.send(reply_.native_handle());
    add(st_->dropped_send, r.refused + r.dropped);
    if (r.datagrams != 0) {
      last_activity_ = steady::now();
      add(st_->datagrams_down, r.datagrams);
      add(st_->bytes_down, r.bytes);
      down_.fetch_add(r.bytes, std::memory_order_relaxed);
    }
  }

  asio::awaitable<void> pump_up() {
    while (!ended_) {
      const auto ec = co_await drain_socket(reply_);
      if (ec) {
        if (ec != asio::error::operation_aborted) {
          // ECONNREFUSED: the client's port is closed, it has gone.
          add(st_->client_gone);
        }
        break;
      }
    }
    close();
  }

  // Target -> client.
  asio::awaitable<void> pump_down() {
    while (!ended_) {
      const auto ec = co_await drain_socket(upstream_);
      if (ec == asio::error::connection_refused) {
        // ICMP port unreachable from the target: counted; the session stays (idle expiry).
        add(st_->icmp_errors);
        continue;
      }
      if (ec) {
        break;
      }
    }
    close();
  }

  asio::awaitable<void> watchdog() {
    while (!ended_) {
      const auto settings = st_->settings();
      const auto idle_at = last_activity_ + idle_timeout_;
      const auto hold_at = last_hold_ + settings->hold_refresh;
      const auto now = steady::now();
      if (now >= idle_at) {
        add(st_->idle_timeouts);
        break;
      }
      if (now >= hold_at) {
        st_->store.hold(key_.destination.address, settings->hold_ttl);
        last_hold_ = now;
        continue;
      }
      timer_.expires_at(std::min(idle_at, hold_at));
      co_await timer_.async_wait(use_tuple);
    }
    close();
  }

  void close() {
    ended_ = true;
    error_code ignored;
    upstream_.close(ignored);
    reply_.close(ignored);
    timer_.cancel();
  }

  // Runs once, on the worker's thread, when run() ends.
  void end() {
    const auto it = worker_->sessions.find(key_);
    if (it != worker_->sessions.end() && it->second.get() == this) {
      worker_->sessions.erase(it);
    }
    st_->release(key_.client.address);
    st_->sessions.remove(id_);
    logger("relay")->debug("udp {} -> {} ended: {} bytes up, {} down", key_.client.to_string(),
                           key_.destination.to_string(), up_.load(), down_.load());
  }

  state_ptr st_;
  worker_ptr worker_;
  udp_flow_key key_;
  dns_name name_;
  std::uint64_t id_ = 0;
  endpoint target_;
  udp::socket upstream_;
  udp::socket reply_;
  asio::steady_timer timer_;
  std::deque<std::vector<std::byte>> queue_;  // while setting up only
  bool relaying_ = false;
  bool ended_ = false;
  std::chrono::seconds idle_timeout_{60};
  steady::time_point last_activity_ = steady::now();
  steady::time_point last_hold_;
  std::atomic<std::uint64_t> up_{0};
  std::atomic<std::uint64_t> down_{0};
};

void log_drop(const state_ptr& st, const udp_flow_key& key, std::string_view why) {
  if (st->failure_log.allow()) {
    logger("relay")->info("udp {} -> {}: dropped: {}", key.client.to_string(), key.destination.to_string(), why);
  }
}

// A datagram the listener received.
void dispatch_received(const state_ptr& st, const worker_ptr& w, const tproxy::received_datagram& d) {
  if (d.truncated || d.size >= w->buffer.size()) {
    add(st->dropped_truncated);
    return;
  }
  if (!d.original_destination) {
    add(st->dropped_no_destination);
    return;
  }
  dispatch(st, w, udp_flow_key{d.source, *d.original_destination},
           std::span<const std::byte>{w->buffer.data(), d.size});
}

void dispatch(const state_ptr& st, const worker_ptr& w, const udp_flow_key& key, std::span<const std::byte> data) {
  if (const auto it = w->sessions.find(key); it != w->sessions.end()) {
    it->second->from_listener(data);
    return;
  }
  const auto settings = st->settings();
  if (!settings->pool_v4.contains(key.destination.address) && !settings->pool_v6.contains(key.destination.address)) {
    add(st->dropped_not_fake);
    log_drop(st, key, "not a fake address");
    return;
  }
  auto mapping = st->store.find(key.destination.address);
  if (!mapping) {
    add(st->dropped_unmapped);
    log_drop(st, key, "no name is mapped to this fake address");
    return;
  }
  switch (st->admit(key.client.address, *settings)) {
    case udp_admission::admitted:
      break;
    case udp_admission::per_client_limit:
      add(st->refused_per_client);
      if (st->refusal_log.allow()) {
        logger("relay")->warn("udp: {} has gateway.udp_sessions_per_client ({}) sessions: new ones are dropped",
                              key.client.address.to_string(), settings->udp_sessions_per_client);
      }
      return;
    case udp_admission::total_limit:
      add(st->refused_max);
      if (st->refusal_log.allow()) {
        logger("relay")->warn("udp: gateway.udp_sessions_max ({}) reached: new sessions are dropped",
                              settings->udp_sessions_max);
      }
      return;
  }
  // A session holds two descriptors, as a TCP flow does: it takes a place in gateway.max_flows,
  // the budget that keeps the daemon inside its open-file limit.
  if (!st->flows.try_acquire()) {
    st->release_limits(key.client.address);
    add(st->refused_max_flows);
    if (st->refusal_log.allow()) {
      logger("relay")->warn("udp: gateway.max_flows ({}) reached: new sessions are dropped", st->flows.max());
    }
    return;
  }
  auto session = std::make_shared<udp_session>(st, w, key, std::move(mapping->name));
  const auto id = st->sessions.add([weak = std::weak_ptr<udp_session>{session}] {
    if (const auto s = weak.lock()) {
      s->abort();
    }
  });
  if (id == 0) {
    st->release(key.client.address);
    return;  // stopping
  }
  session->set_id(id);
  add(st->sessions_created);
  session->from_listener(data);
  w->sessions.emplace(key, session);
  asio::co_spawn(w->listener.get_executor(), session->run(), asio::detached);
}

asio::awaitable<void> receive_loop(state_ptr st, worker_ptr w) {
  const active_guard guard{st};
  int handled = 0;
  for (;;) {
    error_code ec;
    const auto d = tproxy::recv_with_original_destination(w->listener, asio::buffer(w->buffer), ec);
    if (ec == asio::error::would_block) {
      handled = 0;
      std::tie(ec) = co_await w->listener.async_wait(udp::socket::wait_read, use_tuple);
      if (ec || !w->listener.is_open()) {
        break;
      }
      continue;
    }
    if (ec == asio::error::bad_descriptor || !w->listener.is_open()) {
      break;  // closed by stop()
    }
    if (ec) {
      if (st->failure_log.allow()) {
        logger("relay")->warn("receive on the transparent UDP socket failed: {}", ec.message());
      }
      continue;
    }
    dispatch_received(st, w, d);
    if (++handled == datagrams_per_turn) {
      handled = 0;
      co_await asio::post(w->listener.get_executor(), asio::use_awaitable);
    }
  }
  // Sessions set up by this loop stay until they end or stop() closes them.
}

}  // namespace

transparent_udp_relay::transparent_udp_relay(worker_pool& workers, dns::resolver& resolver,
                                             mapping::mapping_store& store, flow_limit& flows,
                                             const transparent_settings& settings)
    : workers_{workers}, state_{std::make_shared<state>(resolver, store, flows, settings)} {}

transparent_udp_relay::~transparent_udp_relay() = default;

void transparent_udp_relay::start() {
  const auto settings = state_->settings();
  std::vector<std::shared_ptr<worker>> opened;
  for (std::size_t i = 0; i < workers_.size(); ++i) {
    auto listener = tproxy::open_transparent_udp(workers_.context(i).get_executor(), settings->port, true);
    listener.set_option(udp::socket::receive_buffer_size{receive_buffer_bytes});
    opened.push_back(std::make_shared<worker>(std::move(listener)));
  }
  for (const auto& w : opened) {
    asio::co_spawn(w->listener.get_executor(), receive_loop(state_, w), asio::detached);
  }
  sockets_ = std::move(opened);
  logger("relay")->info("transparent UDP relay on [::]:{} ({} socket{}), at most {} sessions, {} per client",
                        settings->port, sockets_.size(), sockets_.size() == 1 ? "" : "s, one per thread",
                        settings->udp_sessions_max, settings->udp_sessions_per_client);
}

void transparent_udp_relay::reconfigure(const transparent_settings& settings) {
  state_->destinations.set_deny(settings.deny);
  auto next = std::make_shared<transparent_settings>(settings);
  const std::lock_guard lock{state_->settings_mutex};
  next->port = state_->current->port;  // restart key
  state_->current = std::move(next);
}

asio::awaitable<void> transparent_udp_relay::stop() {
  for (const auto& w : sockets_) {
    asio::post(w->listener.get_executor(), [w] {
      error_code ignored;
      w->listener.close(ignored);
    });
  }
  sockets_.clear();
  // Waiting for UDP sessions would only hold the stop for gateway.drain_timeout: they close as
  // the drain starts, while TCP flows drain.
  co_await drain(state_->sessions, state_->active, std::chrono::steady_clock::now());
}

std::vector<live_flow> transparent_udp_relay::flows() const {
  return state_->sessions.live_flows("relay");
}

void transparent_udp_relay::append_counters(std::vector<counter>& out) const {
  const auto& s = *state_;
  const auto load = [](const counter_t& c) { return c.load(std::memory_order_relaxed); };
  out.insert(out.end(), {{"udp_sessions", load(s.sessions_created)},
                         {"udp_active_sessions", s.sessions.size()},
                         {"udp_datagrams_up", load(s.datagrams_up)},
                         {"udp_datagrams_down", load(s.datagrams_down)},
                         {"udp_bytes_up", load(s.bytes_up)},
                         {"udp_bytes_down", load(s.bytes_down)},
                         {"udp_dropped_not_fake", load(s.dropped_not_fake)},
                         {"udp_dropped_unmapped", load(s.dropped_unmapped)},
                         {"udp_dropped_unresolved", load(s.dropped_unresolved)},
                         {"udp_dropped_denied", load(s.dropped_denied)},
                         {"udp_dropped_no_destination", load(s.dropped_no_destination)},
                         {"udp_dropped_truncated", load(s.dropped_truncated)},
                         {"udp_dropped_queue_full", load(s.dropped_queue_full)},
                         {"udp_dropped_send", load(s.dropped_send)},
                         {"udp_dropped_setup", load(s.dropped_setup)},
                         {"udp_refused_per_client", load(s.refused_per_client)},
                         {"udp_refused_max", load(s.refused_max)},
                         {"udp_refused_max_flows", load(s.refused_max_flows)},
                         {"udp_icmp_errors", load(s.icmp_errors)},
                         {"udp_idle_timeouts", load(s.idle_timeouts)},
                         {"udp_client_gone", load(s.client_gone)},
                         {"udp_misdelivered", load(s.misdelivered)}});
}

}  // namespace gate46::gateway
