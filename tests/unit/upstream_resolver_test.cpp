// The upstream resolver against fake upstreams on loopback, all in one io_context: forged
// answers ignored, truncation retried over TCP, fail-over to the next upstream, timeouts,
// caching, and resolve() outcomes.
#include "gate46/dns/resolver.hpp"

#include <gtest/gtest.h>

#include <array>
#include <functional>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ip/udp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

namespace gate46::dns {
namespace {

namespace asio = boost::asio;
using namespace std::chrono_literals;
using asio::ip::tcp;
using asio::ip::udp;
constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);

// A response to `query_wire` (ID and question copied) with the given flags/rcode byte and
// A records, written field by field.
bytes response(const bytes& query_wire, std::uint8_t flags3, const std::vector<std::array<std::uint8_t, 4>>& records,
               bool truncated = false, std::optional<std::uint16_t> id = std::nullopt) {
  // Header and question of the query: 12 bytes + the question (up to the OPT record).
  const auto q = std::get<query>(parse_query(query_wire));
  bytes out{static_cast<std::uint8_t>(id.value_or(q.id) >> 8),
            static_cast<std::uint8_t>(id.value_or(q.id)),
            static_cast<std::uint8_t>(0x81 | (truncated ? 0x02 : 0)),
            flags3,
            0,
            1,
            0,
            static_cast<std::uint8_t>(records.size()),
            0,
            0,
            0,
            0};
  out.insert(out.end(), q.name_as_sent.begin(), q.name_as_sent.end());
  out.insert(out.end(), {static_cast<std::uint8_t>(q.q.type >> 8), static_cast<std::uint8_t>(q.q.type), 0, 1});
  for (const auto& r : records) {
    out.insert(out.end(), {0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4});  // name pointer, A, IN, TTL 60, RDLENGTH 4
    out.insert(out.end(), r.begin(), r.end());
  }
  return out;
}

// A fake upstream: `behaviour` decides what to send back for each UDP query.
struct fake_upstream {
  using behaviour = std::function<std::vector<bytes>(const bytes& query, int n)>;
  fake_upstream(asio::io_context& io, behaviour b)
      : udp_socket{io, udp::endpoint{asio::ip::make_address("127.0.0.1"), 0}},
        acceptor{io, tcp::endpoint{asio::ip::make_address("127.0.0.1"), udp_socket.local_endpoint().port()}},
        reply{std::move(b)} {
    asio::co_spawn(io, serve_udp(), asio::detached);
    asio::co_spawn(io, serve_tcp(), asio::detached);
  }
  [[nodiscard]] endpoint at() const {
    return *endpoint::parse("127.0.0.1:" + std::to_string(udp_socket.local_endpoint().port()));
  }

  asio::awaitable<void> serve_udp() {
    std::vector<std::uint8_t> buffer(65536);
    udp::endpoint peer;
    while (true) {
      auto [ec, n] = co_await udp_socket.async_receive_from(asio::buffer(buffer), peer, use_tuple);
      if (ec) {
        co_return;
      }
      ++udp_queries;
      for (const auto& r : reply(bytes(buffer.begin(), buffer.begin() + static_cast<long>(n)), udp_queries)) {
        co_await udp_socket.async_send_to(asio::buffer(r), peer, use_tuple);
      }
    }
  }
  asio::awaitable<void> serve_tcp() {
    while (true) {
      auto [ec, socket] = co_await acceptor.async_accept(use_tuple);
      if (ec) {
        co_return;
      }
      std::array<std::uint8_t, 2> length{};
      co_await asio::async_read(socket, asio::buffer(length), use_tuple);
      bytes q(static_cast<std::size_t>((length[0] << 8) | length[1]));
      co_await asio::async_read(socket, asio::buffer(q), use_tuple);
      ++tcp_queries;
      const auto r = response(q, 0x80, {{192, 0, 2, 1}, {192, 0, 2, 2}, {192, 0, 2, 3}});
      const std::array<std::uint8_t, 2> prefix{static_cast<std::uint8_t>(r.size() >> 8),
                                               static_cast<std::uint8_t>(r.size())};
      co_await asio::async_write(socket, std::array{asio::buffer(prefix), asio::buffer(r)}, use_tuple);
    }
  }

  udp::socket udp_socket;
  tcp::acceptor acceptor;
  behaviour reply;
  int udp_queries = 0;
  int tcp_queries = 0;
};

template <typename T>
T run(asio::io_context& io, asio::awaitable<T> work) {
  std::optional<T> out;
  asio::co_spawn(io, std::move(work), [&](const std::exception_ptr& e, T value) {
    if (e) {
      std::rethrow_exception(e);
    }
    out = std::move(value);
    io.stop();
  });
  io.restart();
  io.run_for(10s);
  EXPECT_TRUE(out.has_value()) << "did not complete";
  return std::move(*out);
}

question a_question() {
  return {*dns_name::parse("a.gate46.test"), rr_type::a, class_in};
}

TEST(upstream_resolver, ignores_forged_answers_and_takes_the_real_one) {
  asio::io_context io;
  fake_upstream up{io, [](const bytes& q, int) {
                     return std::vector<bytes>{
                         response(q, 0x80, {{203, 0, 113, 66}}, false, std::uint16_t{1}),  // wrong ID
                         response(q, 0x80, {{192, 0, 2, 7}}),
                     };
                   }};
  upstream_resolver r{{{up.at()}, 500ms, 1}, 100};
  const auto addresses = run(io, r.resolve(a_question().name, ip_family::v4));
  ASSERT_TRUE(addresses);
  EXPECT_EQ(*addresses, std::vector<ip_address>{*ip_address::parse("192.0.2.7")});
  EXPECT_GE(r.stats().ignored_answers, 1U);
}

TEST(upstream_resolver, retries_truncated_answers_over_tcp) {
  asio::io_context io;
  fake_upstream up{io, [](const bytes& q, int) { return std::vector<bytes>{response(q, 0x80, {}, true)}; }};
  upstream_resolver r{{{up.at()}, 500ms, 1}, 100};
  const auto a = run(io, r.query(a_question(), {}));
  ASSERT_TRUE(a);
  EXPECT_FALSE(a->a->truncated);
  EXPECT_EQ(addresses_in(*a->a, ip_family::v4).size(), 3U);
  EXPECT_EQ(up.tcp_queries, 1);
  EXPECT_EQ(r.stats().tcp_fallbacks, 1U);
}

TEST(upstream_resolver, fails_over_and_times_out) {
  asio::io_context io;
  fake_upstream silent{io, [](const bytes&, int) { return std::vector<bytes>{}; }};
  fake_upstream good{io, [](const bytes& q, int) { return std::vector<bytes>{response(q, 0x80, {{192, 0, 2, 9}})}; }};
  {
    upstream_resolver r{{{silent.at(), good.at()}, 200ms, 2}, 100};
    const auto a = run(io, r.resolve(a_question().name, ip_family::v4));
    ASSERT_TRUE(a);  // the first attempt goes to `silent`, the second to `good`
    EXPECT_EQ(r.stats().upstream_timeouts, 1U);
  }
  {
    upstream_resolver r{{{silent.at()}, 100ms, 2}, 100};
    const auto started = std::chrono::steady_clock::now();
    const auto a = run(io, r.query(a_question(), {}));
    ASSERT_FALSE(a);
    EXPECT_EQ(a.error(), resolve_errc::timeout);
    EXPECT_GE(std::chrono::steady_clock::now() - started, 200ms);  // two attempts of 100 ms
  }
}

TEST(upstream_resolver, a_timed_out_upstream_is_tried_last) {
  asio::io_context io;
  fake_upstream silent{io, [](const bytes&, int) { return std::vector<bytes>{}; }};
  fake_upstream good{io, [](const bytes& q, int) { return std::vector<bytes>{response(q, 0x80, {{192, 0, 2, 9}})}; }};
  upstream_resolver r{{{silent.at(), good.at()}, 200ms, 2}, 100};
  // Four different names (no cache): in turn, two of them would start at `silent`; only the
  // first pays its timeout.
  for (const char* n : {"a.gate46.test", "b.gate46.test", "c.gate46.test", "d.gate46.test"}) {
    ASSERT_TRUE(run(io, r.resolve(*dns_name::parse(n), ip_family::v4))) << n;
  }
  EXPECT_EQ(r.stats().upstream_timeouts, 1U);
  EXPECT_EQ(silent.udp_queries, 1);
  EXPECT_EQ(good.udp_queries, 4);
}

TEST(upstream_resolver, caches_and_reports_negative_outcomes) {
  asio::io_context io;
  fake_upstream up{io, [](const bytes& q, int) {
                     const auto name = std::get<query>(parse_query(q)).q.name.to_string();
                     if (name.starts_with("nx.")) {
                       return std::vector<bytes>{response(q, 0x83, {})};  // NXDOMAIN
                     }
                     if (name.starts_with("fail.")) {
                       return std::vector<bytes>{response(q, 0x82, {})};  // SERVFAIL
                     }
                     return std::vector<bytes>{response(q, 0x80, {{192, 0, 2, 5}})};
                   }};
  upstream_resolver r{{{up.at()}, 500ms, 1}, 100};
  ASSERT_TRUE(run(io, r.resolve(a_question().name, ip_family::v4)));
  ASSERT_TRUE(run(io, r.resolve(a_question().name, ip_family::v4)));
  EXPECT_EQ(up.udp_queries, 1);  // the second came from the cache
  EXPECT_EQ(r.stats().cache_hits, 1U);
  EXPECT_EQ(run(io, r.resolve(*dns_name::parse("nx.gate46.test"), ip_family::v4)).error(), resolve_errc::nxdomain);
  EXPECT_EQ(run(io, r.resolve(*dns_name::parse("fail.gate46.test"), ip_family::v4)).error(), resolve_errc::servfail);
  EXPECT_EQ(run(io, r.resolve(a_question().name, ip_family::v6)).error(), resolve_errc::nodata);
}

}  // namespace
}  // namespace gate46::dns
