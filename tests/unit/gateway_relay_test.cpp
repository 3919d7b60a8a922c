// The connector and the relay engine over loopback TCP: Happy Eyeballs outcomes, SO_MARK;
// half-close both ways, large transfers through splice() and through the buffer fallback,
// pipe pool exhaustion, idle timeout, keepalive, peer reset, abort; gateway.max_flows.
#include <sys/socket.h>

#include <atomic>
#include <future>
#include <optional>
#include <random>
#include <string>
#include <thread>

#include <gtest/gtest.h>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/use_future.hpp>
#include <boost/asio/write.hpp>

#include "gate46/gateway/connector.hpp"
#include "gate46/gateway/flow_limit.hpp"
#include "gate46/gateway/relay.hpp"
#include "gate46/testing/privileges.hpp"

namespace {

using namespace gate46;
using namespace gate46::gateway;
using namespace std::chrono_literals;
namespace asio = boost::asio;
using asio::ip::tcp;

ip_address addr(const char* text) {
  return *ip_address::parse(text);
}

template <typename T>
T run(asio::io_context& io, asio::awaitable<T> a) {
  auto f = asio::co_spawn(io, std::move(a), asio::use_future);
  io.restart();
  io.run();
  return f.get();
}

// A port on the loopback address of `family` that nothing listens on.
std::uint16_t closed_port(asio::io_context& io, const asio::ip::address& on) {
  tcp::acceptor a{io, tcp::endpoint{on, 0}};
  return a.local_endpoint().port();
}

TEST(direct_connector, connects_to_the_address_that_answers_and_marks_the_socket) {
  GATE46_SKIP_UNLESS_ROOT();  // SO_MARK needs CAP_NET_ADMIN
  asio::io_context io;
  tcp::acceptor listener{io, tcp::endpoint{asio::ip::make_address("127.0.0.1"), 0}};
  const auto port = listener.local_endpoint().port();
  // ::1 on the same port number has no listener: refused, then IPv4 wins.
  direct_connector c{{ip_family::v6, 50ms, 5000ms, 0x47}};
  connect_outcome outcome;
  auto socket = run(io, c.connect({addr("::1")}, {addr("127.0.0.1")}, port, outcome));
  ASSERT_TRUE(socket.has_value()) << outcome.describe();
  EXPECT_EQ(socket->remote_endpoint().port(), port);
  EXPECT_TRUE(socket->remote_endpoint().address().is_v4());
  int mark = 0;
  socklen_t length = sizeof mark;
  ASSERT_EQ(getsockopt(socket->native_handle(), SOL_SOCKET, SO_MARK, &mark, &length), 0);
  EXPECT_EQ(mark, 0x47);
  ASSERT_EQ(outcome.attempts.size(), 2U) << outcome.describe();
  EXPECT_EQ(outcome.attempts[0].address, addr("::1"));
  EXPECT_EQ(outcome.attempts[0].error, std::errc::connection_refused);
  EXPECT_FALSE(outcome.attempts[1].error);
  EXPECT_FALSE(outcome.error);
}

TEST(direct_connector, reports_the_preferred_familys_error_when_everything_fails) {
  asio::io_context io;
  const auto port4 = closed_port(io, asio::ip::make_address("127.0.0.1"));
  direct_connector c{{ip_family::v4, 50ms, 5000ms, 0}};
  connect_outcome outcome;
  auto socket = run(io, c.connect({addr("::1")}, {addr("127.0.0.1")}, port4, outcome));
  EXPECT_FALSE(socket.has_value());
  EXPECT_EQ(outcome.error, std::errc::connection_refused) << outcome.describe();
  EXPECT_EQ(outcome.attempts.size(), 2U) << outcome.describe();
  EXPECT_NE(outcome.describe().find("127.0.0.1: "), std::string::npos) << outcome.describe();
}

TEST(direct_connector, no_address_is_host_unreachable) {
  asio::io_context io;
  direct_connector c{{ip_family::v6, 50ms, 5000ms, 0}};
  connect_outcome outcome;
  EXPECT_FALSE(run(io, c.connect({}, {}, 80, outcome)).has_value());
  EXPECT_EQ(outcome.error, std::errc::host_unreachable);
}

// A thread running relays: flows on one loop share that thread's pipe pool.
struct relay_loop {
  asio::io_context io;
  asio::executor_work_guard<asio::io_context::executor_type> guard{io.get_executor()};
  std::thread thread{[this] { io.run(); }};
  relay_loop() = default;
  relay_loop(const relay_loop&) = delete;
  relay_loop& operator=(const relay_loop&) = delete;
  ~relay_loop() {
    guard.reset();
    thread.join();
  }
};

// Restores the pipe limit a test changed.
struct pipe_limit_scope {
  std::size_t saved = pipes_per_thread();
  explicit pipe_limit_scope(std::size_t pipes) { set_pipes_per_thread(pipes); }
  pipe_limit_scope(const pipe_limit_scope&) = delete;
  pipe_limit_scope& operator=(const pipe_limit_scope&) = delete;
  ~pipe_limit_scope() { set_pipes_per_thread(saved); }
};

// client <-> [relay] <-> target, all on loopback; the relay runs on `loop`'s thread, the test
// drives the two outer ends with blocking calls.
struct relay_rig {
  asio::io_context io;
  tcp::socket client{io};  // the test's ends
  tcp::socket target{io};
  std::promise<relay_result> promise;
  std::future<relay_result> result = promise.get_future();
  std::shared_ptr<relay_flow> flow;
  std::atomic<int> keepalives{0};

  explicit relay_rig(relay_loop& loop, std::chrono::steady_clock::duration idle = 30s,
                     std::optional<std::chrono::steady_clock::duration> keepalive = std::nullopt) {
    tcp::acceptor a{io, tcp::endpoint{asio::ip::make_address("127.0.0.1"), 0}};
    tcp::socket relay_client{loop.io};
    tcp::socket relay_target{loop.io};
    client.connect(a.local_endpoint());
    a.accept(relay_client);
    relay_target.connect(a.local_endpoint());
    a.accept(target);
    relay_settings settings;
    settings.idle_timeout = idle;
    if (keepalive) {
      settings.keepalive = [this] { ++keepalives; };
      settings.keepalive_interval = *keepalive;
    }
    // Started on the loop's thread, where the flow lives.
    std::promise<std::shared_ptr<relay_flow>> started;
    asio::post(loop.io, [&] {
      started.set_value(start_relay(std::move(relay_client), std::move(relay_target), std::move(settings),
                                    [this](const relay_result& r) { promise.set_value(r); }));
    });
    flow = started.get_future().get();
  }
  relay_rig(const relay_rig&) = delete;
  relay_rig& operator=(const relay_rig&) = delete;
  ~relay_rig() {
    boost::system::error_code ignored;
    client.close(ignored);
    target.close(ignored);
    if (result.valid()) {
      result.wait_for(10s);  // the flow ends on the loop before the promise goes
    }
  }
  relay_result wait() {
    EXPECT_EQ(result.wait_for(10s), std::future_status::ready);
    return result.get();
  }
};

std::string read_all(tcp::socket& s, boost::system::error_code& ec) {
  std::string out;
  asio::read(s, asio::dynamic_buffer(out), ec);
  return out;
}

std::string read_all(tcp::socket& s) {
  boost::system::error_code ignored;
  return read_all(s, ignored);
}

std::string random_bytes(std::size_t n, std::uint64_t seed) {
  std::string out(n, '\0');
  std::mt19937_64 random{seed};
  for (auto& c : out) {
    c = static_cast<char>(random() & 0xffU);
  }
  return out;
}

// Writes `data` into `from` and closes its sending side, while reading `to` to EOF.
std::string send_through(tcp::socket& from, tcp::socket& to, const std::string& data) {
  std::thread writer{[&] {
    asio::write(from, asio::buffer(data));
    from.shutdown(tcp::socket::shutdown_send);
  }};
  auto received = read_all(to);
  writer.join();
  return received;
}

TEST(relay_engine, half_close_from_the_client_keeps_the_other_way_open) {
  relay_loop loop;
  relay_rig rig{loop};
  asio::write(rig.client, asio::buffer(std::string{"request"}));
  rig.client.shutdown(tcp::socket::shutdown_send);
  EXPECT_EQ(read_all(rig.target), "request");  // EOF arrives after the data
  const std::string big(200000, 'x');
  asio::write(rig.target, asio::buffer(big));
  rig.target.shutdown(tcp::socket::shutdown_send);
  EXPECT_EQ(read_all(rig.client), big);
  const auto r = rig.wait();
  EXPECT_EQ(r.client_to_target, 7U);
  EXPECT_EQ(r.target_to_client, big.size());
  EXPECT_FALSE(r.idle_timeout);
  EXPECT_FALSE(r.reset);
}

TEST(relay_engine, half_close_from_the_target_keeps_the_other_way_open) {
  relay_loop loop;
  relay_rig rig{loop};
  asio::write(rig.target, asio::buffer(std::string{"banner"}));
  rig.target.shutdown(tcp::socket::shutdown_send);
  EXPECT_EQ(read_all(rig.client), "banner");
  asio::write(rig.client, asio::buffer(std::string{"late"}));
  rig.client.shutdown(tcp::socket::shutdown_send);
  EXPECT_EQ(read_all(rig.target), "late");
  const auto r = rig.wait();
  EXPECT_EQ(r.client_to_target, 4U);
  EXPECT_EQ(r.target_to_client, 6U);
}

TEST(relay_engine, bytes_sent_before_the_relay_starts_are_relayed) {
  // The client's first bytes often arrive before the flow exists (with the SOCKS request, or
  // right after the handshake): the edge-triggered reactor never reports them.
  relay_loop loop;
  asio::io_context io;
  tcp::acceptor a{io, tcp::endpoint{asio::ip::make_address("127.0.0.1"), 0}};
  tcp::socket client{io};
  tcp::socket target{io};
  tcp::socket relay_client{loop.io};
  tcp::socket relay_target{loop.io};
  client.connect(a.local_endpoint());
  a.accept(relay_client);
  relay_target.connect(a.local_endpoint());
  a.accept(target);
  asio::write(client, asio::buffer(std::string{"early"}));
  client.shutdown(tcp::socket::shutdown_send);
  std::this_thread::sleep_for(50ms);  // the bytes are in relay_client's receive queue
  std::promise<relay_result> done;
  asio::post(loop.io, [&] {
    start_relay(std::move(relay_client), std::move(relay_target), {},
                [&](const relay_result& r) { done.set_value(r); });
  });
  EXPECT_EQ(read_all(target), "early");
  target.shutdown(tcp::socket::shutdown_send);
  EXPECT_EQ(read_all(client), "");
  auto f = done.get_future();
  ASSERT_EQ(f.wait_for(10s), std::future_status::ready);
  EXPECT_EQ(f.get().client_to_target, 5U);
}

TEST(relay_engine, large_transfers_both_ways_at_once_arrive_whole_through_splice) {
  relay_loop loop;
  relay_rig rig{loop};
  const auto up = random_bytes(std::size_t{24} << 20U, 1);
  const auto down = random_bytes(std::size_t{24} << 20U, 2);
  const auto before = relay_stats();
  std::string received_up;
  std::thread upstream{[&] { received_up = send_through(rig.client, rig.target, up); }};
  const auto received_down = send_through(rig.target, rig.client, down);
  upstream.join();
  EXPECT_TRUE(received_up == up) << received_up.size() << " bytes arrived of " << up.size();
  EXPECT_TRUE(received_down == down) << received_down.size() << " bytes arrived of " << down.size();
  const auto r = rig.wait();
  EXPECT_EQ(r.client_to_target, up.size());
  EXPECT_EQ(r.target_to_client, down.size());
  EXPECT_FALSE(r.reset);
  // Bulk goes through pipes; only the first reads of each direction (until one fills the copy
  // buffer) and stretches where the sender trickled are copied.
  EXPECT_EQ(r.spliced_bytes + r.buffered_bytes, up.size() + down.size());
  EXPECT_GT(r.spliced_bytes, (up.size() + down.size()) / 2);
  const auto after = relay_stats();
  // Other tests' relays run in other processes (ctest) or before this one: the difference is ours.
  EXPECT_EQ(after.spliced_bytes - before.spliced_bytes, r.spliced_bytes);
  EXPECT_EQ(after.buffered_bytes - before.buffered_bytes, r.buffered_bytes);
}

TEST(relay_engine, without_pipes_it_copies_through_a_buffer) {
  const pipe_limit_scope no_pipes{0};
  relay_loop loop;
  relay_rig rig{loop};
  const auto data = random_bytes(std::size_t{4} << 20U, 3);
  const auto before = relay_stats();
  EXPECT_TRUE(send_through(rig.client, rig.target, data) == data);
  EXPECT_TRUE(send_through(rig.target, rig.client, data) == data);
  rig.wait();
  const auto after = relay_stats();
  EXPECT_EQ(after.buffered_bytes - before.buffered_bytes, 2 * data.size());
  EXPECT_EQ(after.spliced_bytes, before.spliced_bytes);
}

TEST(relay_engine, an_idle_flow_holds_no_pipe) {
  const pipe_limit_scope one_pipe{1};
  relay_loop loop;
  relay_rig idle{loop};
  // The idle flow moves bulk first (it splices, with the thread's only pipe)...
  const auto first = random_bytes(std::size_t{4} << 20U, 7);
  const auto spliced_before = relay_stats().spliced_bytes;
  std::thread writer{[&] { asio::write(idle.client, asio::buffer(first)); }};
  std::string arrived(first.size(), '\0');
  asio::read(idle.target, asio::buffer(arrived));
  writer.join();
  EXPECT_TRUE(arrived == first);
  EXPECT_GT(relay_stats().spliced_bytes, spliced_before);
  // ...and then sits open: another flow on the same thread gets the pipe, no fallback.
  relay_rig busy{loop};
  const auto data = random_bytes(std::size_t{2} << 20U, 4);
  const auto before = relay_stats();
  EXPECT_TRUE(send_through(busy.client, busy.target, data) == data);
  const auto after = relay_stats();
  EXPECT_EQ(after.pipe_fallbacks, before.pipe_fallbacks);
  EXPECT_GT(after.spliced_bytes - before.spliced_bytes, data.size() / 2);
}

TEST(relay_engine, small_messages_are_copied_and_bulk_is_spliced) {
  relay_loop loop;
  relay_rig rig{loop};
  const auto before = relay_stats();
  // Request/response in small messages: copied, no pipe taken.
  for (int i = 0; i < 20; ++i) {
    asio::write(rig.client, asio::buffer(std::string(300, 'q')));
    std::string request(300, '\0');
    asio::read(rig.target, asio::buffer(request));
    asio::write(rig.target, asio::buffer(std::string(1200, 'r')));
    std::string reply(1200, '\0');
    asio::read(rig.client, asio::buffer(reply));
  }
  // The relay counts a send after it returned, maybe after the client has read the bytes.
  auto small = relay_stats();
  for (int i = 0; i < 200 && small.buffered_bytes - before.buffered_bytes < std::uint64_t{20} * 1500U; ++i) {
    std::this_thread::sleep_for(10ms);
    small = relay_stats();
  }
  EXPECT_EQ(small.buffered_bytes - before.buffered_bytes, std::uint64_t{20} * 1500U);
  EXPECT_EQ(small.spliced_bytes, before.spliced_bytes);
  // Then a bulk download on the same flow: spliced.
  const auto big = random_bytes(std::size_t{8} << 20U, 8);
  EXPECT_TRUE(send_through(rig.target, rig.client, big) == big);
  EXPECT_GT(relay_stats().spliced_bytes - small.spliced_bytes, big.size() / 2);
}

TEST(relay_engine, pipe_pool_exhaustion_falls_back_without_stalling) {
  const pipe_limit_scope one_pipe{1};
  relay_loop loop;
  // A receiver that does not read: its direction keeps the thread's only pipe, full, waiting
  // for the client's window.
  relay_rig stalled{loop};
  const auto big = random_bytes(std::size_t{16} << 20U, 5);
  // The relay's thread waits while the writer fills the socket buffers, so that the stalled
  // direction reads in big pieces (bulk: splicing) rather than trickles (which it would copy).
  std::promise<void> go;
  asio::post(loop.io, [ready = go.get_future().share()] { ready.wait(); });
  std::thread writer{[&] {
    boost::system::error_code ec;
    asio::write(stalled.target, asio::buffer(big), ec);
    stalled.target.shutdown(tcp::socket::shutdown_send, ec);
  }};
  std::this_thread::sleep_for(100ms);
  go.set_value();
  // Stalled: the one pipe stays in use (100 ms in a row; it flickers while bytes still move).
  int in_use_in_a_row = 0;
  for (int i = 0; i < 1000 && in_use_in_a_row < 10; ++i) {
    std::this_thread::sleep_for(10ms);
    in_use_in_a_row = relay_stats().pipes_in_use == 1 ? in_use_in_a_row + 1 : 0;
  }
  EXPECT_EQ(in_use_in_a_row, 10) << "the stalled flow never held the pipe";
  // Meanwhile another flow on that thread moves data both ways, through buffers.
  relay_rig other{loop};
  const auto data = random_bytes(std::size_t{2} << 20U, 6);
  const auto before = relay_stats();
  EXPECT_TRUE(send_through(other.client, other.target, data) == data);
  EXPECT_TRUE(send_through(other.target, other.client, data) == data);
  const auto r = other.wait();
  EXPECT_GT(r.pipe_fallbacks, 0U);
  EXPECT_EQ(r.buffered_bytes, 2 * data.size());
  const auto after = relay_stats();
  EXPECT_GT(after.pipe_fallbacks, before.pipe_fallbacks);
  EXPECT_GE(after.buffered_bytes - before.buffered_bytes, 2 * data.size());
  // The stalled one still delivers everything once its client reads.
  EXPECT_TRUE(read_all(stalled.client) == big);
  writer.join();
}

TEST(relay_engine, idle_timeout_ends_both_sides) {
  relay_loop loop;
  relay_rig rig{loop, 200ms};
  const auto r = rig.wait();
  EXPECT_TRUE(r.idle_timeout);
  EXPECT_EQ(read_all(rig.client), "");
  EXPECT_EQ(read_all(rig.target), "");
}

TEST(relay_engine, keepalive_runs_while_the_flow_is_idle) {
  relay_loop loop;
  relay_rig rig{loop, 30s, 40ms};
  std::this_thread::sleep_for(300ms);
  rig.client.shutdown(tcp::socket::shutdown_send);
  rig.target.shutdown(tcp::socket::shutdown_send);
  const auto r = rig.wait();
  EXPECT_FALSE(r.idle_timeout);
  EXPECT_GE(rig.keepalives.load(), 3);
}

TEST(relay_engine, a_reset_from_the_target_resets_the_client) {
  relay_loop loop;
  relay_rig rig{loop};
  asio::write(rig.client, asio::buffer(std::string{"x"}));
  std::string one(1, '\0');
  asio::read(rig.target, asio::buffer(one));
  rig.target.set_option(asio::socket_base::linger{true, 0});
  rig.target.close();  // RST
  const auto r = rig.wait();
  EXPECT_TRUE(r.reset);
  boost::system::error_code ec;
  EXPECT_EQ(read_all(rig.client, ec), "");
  EXPECT_EQ(ec, asio::error::connection_reset);
}

TEST(relay_engine, abort_closes_both_sides) {
  relay_loop loop;
  relay_rig rig{loop};
  rig.flow->abort();
  const auto r = rig.wait();
  EXPECT_TRUE(r.aborted);
  EXPECT_EQ(read_all(rig.client), "");
  EXPECT_EQ(read_all(rig.target), "");
  rig.flow->abort();  // after the end: harmless
}

TEST(flow_limit, refuses_past_the_maximum_and_counts) {
  flow_limit limit{2};
  EXPECT_TRUE(limit.try_acquire());
  EXPECT_TRUE(limit.try_acquire());
  EXPECT_FALSE(limit.try_acquire());
  EXPECT_EQ(limit.refused(), 1U);
  limit.release();
  EXPECT_TRUE(limit.try_acquire());
  limit.set_max(1);
  EXPECT_FALSE(limit.try_acquire());
  EXPECT_EQ(limit.in_use(), 2U);
}

TEST(flow_limit, a_slot_gives_its_place_back_unless_taken) {
  flow_limit limit{1};
  ASSERT_TRUE(limit.try_acquire());
  { const flow_slot slot{limit}; }
  EXPECT_EQ(limit.in_use(), 0U);
  ASSERT_TRUE(limit.try_acquire());
  flow_limit* taken = nullptr;
  {
    flow_slot slot{limit};
    flow_slot moved{std::move(slot)};
    taken = moved.take();
  }
  EXPECT_EQ(limit.in_use(), 1U);
  ASSERT_EQ(taken, &limit);
  taken->release();
  EXPECT_EQ(limit.in_use(), 0U);
}

TEST(flow_limit, the_default_leaves_room_for_pipes_and_listeners) {
  // 20,000 descriptors, 2 threads of 64 pipes: 2 per flow after 256 + 2 x (128 + 32).
  EXPECT_EQ(default_max_flows(20000, 2, 64), (20000U - 576U) / 2);
  EXPECT_EQ(default_max_flows(1024, 1, 64), (1024U - 416U) / 2);
  EXPECT_EQ(default_max_flows(100, 4, 64), 1U);
}

}  // namespace
