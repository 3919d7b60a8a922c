// The connector and the relay over loopback TCP: Happy Eyeballs outcomes, SO_MARK, half-close
// both ways, idle timeout, peer reset.
#include <sys/socket.h>

#include <string>
#include <thread>

#include <gtest/gtest.h>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/use_future.hpp>
#include <boost/asio/write.hpp>

#include "gate46/gateway/connector.hpp"
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

// Owns both sockets for the relay's lifetime (a named coroutine, not a capturing lambda).
asio::awaitable<relay_result> run_relay(tcp::socket client, tcp::socket target,
                                        std::chrono::steady_clock::duration idle) {
  co_return co_await relay(client, target, idle);
}

// client <-> [relay] <-> target, all on loopback; the relay runs on its own thread.
struct relay_rig {
  asio::io_context relay_io;
  asio::io_context io;
  tcp::socket client{io};  // the test's ends
  tcp::socket target{io};
  std::future<relay_result> result;
  std::thread thread;

  explicit relay_rig(std::chrono::steady_clock::duration idle = 30s) {
    tcp::acceptor a{io, tcp::endpoint{asio::ip::make_address("127.0.0.1"), 0}};
    tcp::socket relay_client{relay_io};
    tcp::socket relay_target{relay_io};
    client.connect(a.local_endpoint());
    a.accept(relay_client);
    relay_target.connect(a.local_endpoint());
    a.accept(target);
    result =
        asio::co_spawn(relay_io, run_relay(std::move(relay_client), std::move(relay_target), idle), asio::use_future);
    thread = std::thread{[this] { relay_io.run(); }};
  }
  relay_rig(const relay_rig&) = delete;
  relay_rig& operator=(const relay_rig&) = delete;
  ~relay_rig() {
    boost::system::error_code ignored;
    client.close(ignored);
    target.close(ignored);
    if (thread.joinable()) {
      thread.join();
    }
  }
  relay_result wait() {
    EXPECT_EQ(result.wait_for(10s), std::future_status::ready);
    return result.get();
  }
};

std::string read_all(tcp::socket& s) {
  std::string out;
  boost::system::error_code ec;
  asio::read(s, asio::dynamic_buffer(out), ec);
  return out;
}

TEST(relay, half_close_from_the_client_keeps_the_other_way_open) {
  relay_rig rig;
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

TEST(relay, half_close_from_the_target_keeps_the_other_way_open) {
  relay_rig rig;
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

TEST(relay, idle_timeout_ends_both_sides) {
  relay_rig rig{200ms};
  const auto r = rig.wait();
  EXPECT_TRUE(r.idle_timeout);
  EXPECT_EQ(read_all(rig.client), "");
  EXPECT_EQ(read_all(rig.target), "");
}

TEST(relay, a_reset_from_the_target_ends_the_client_side) {
  relay_rig rig;
  asio::write(rig.client, asio::buffer(std::string{"x"}));
  std::string one(1, '\0');
  asio::read(rig.target, asio::buffer(one));
  rig.target.set_option(asio::socket_base::linger{true, 0});
  rig.target.close();  // RST
  const auto r = rig.wait();
  EXPECT_TRUE(r.reset);
  EXPECT_EQ(read_all(rig.client), "");
}

}  // namespace
