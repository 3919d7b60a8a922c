// A plain transparent listener built on gate46::tproxy's helpers, for the capture tests: what
// TPROXY hands to tproxy.port, with the original destination, on stdout, one line each:
//   tcp SOURCE -> ORIGINAL        (then answers "ok ORIGINAL\n" and closes)
//   udp SOURCE -> ORIGINAL TEXT   (then answers "ok ORIGINAL\n" from ORIGINAL itself)
// Usage: integration_tproxy_listener PORT. Prints "ready" once both sockets listen; runs until
// killed.
#include <cstdio>
#include <exception>
#include <string>
#include <thread>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ip/udp.hpp>
#include <boost/asio/write.hpp>

#include "gate46/common/asio_address.hpp"
#include "gate46/tproxy/transparent.hpp"

namespace {

namespace asio = boost::asio;

void say(const std::string& line) {
  std::printf("%s\n", line.c_str());
  std::fflush(stdout);
}

void serve_tcp(asio::ip::tcp::acceptor& acceptor) {
  for (;;) {
    auto socket = acceptor.accept();
    const auto peer = gate46::from_asio_endpoint(socket.remote_endpoint());
    const auto original = gate46::tproxy::original_destination(socket);
    say("tcp " + peer.to_string() + " -> " + original.to_string());
    const std::string reply = "ok " + original.to_string() + "\n";
    boost::system::error_code ignored;
    asio::write(socket, asio::buffer(reply), ignored);
  }
}

void serve_udp(asio::io_context& io, asio::ip::udp::socket& socket) {
  std::string buffer(2048, '\0');
  for (;;) {
    boost::system::error_code ec;
    const auto d = gate46::tproxy::recv_with_original_destination(socket, asio::buffer(buffer), ec);
    if (ec == asio::error::would_block || ec == asio::error::try_again) {
      socket.wait(asio::ip::udp::socket::wait_read);
      continue;
    }
    if (ec) {
      continue;
    }
    if (!d.original_destination) {
      say("udp " + d.source.to_string() + " -> (none)");
      continue;
    }
    auto text = buffer.substr(0, d.size);
    while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) {
      text.pop_back();
    }
    say("udp " + d.source.to_string() + " -> " + d.original_destination->to_string() + " " + text);
    auto from = gate46::tproxy::open_transparent_udp_from(io.get_executor(), *d.original_destination);
    const std::string reply = "ok " + d.original_destination->to_string() + "\n";
    from.send_to(asio::buffer(reply), gate46::to_asio_endpoint<asio::ip::udp>(d.source), 0, ec);
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s PORT\n", argv[0]);
    return 2;
  }
  try {
    asio::io_context io;
    const auto port = static_cast<std::uint16_t>(std::stoul(argv[1]));
    auto acceptor = gate46::tproxy::open_transparent_tcp(io.get_executor(), port);
    auto udp = gate46::tproxy::open_transparent_udp(io.get_executor(), port);
    say("ready");
    std::thread tcp_thread{[&] { serve_tcp(acceptor); }};
    serve_udp(io, udp);
    tcp_thread.join();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "tproxy_listener: %s\n", e.what());
    return 1;
  }
  return 0;
}
