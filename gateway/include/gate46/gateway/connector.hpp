// Outgoing TCP connections for the gateway: Happy Eyeballs v2 over a name's addresses
// (RFC 8305: families interleaved from gateway.prefer_family, a new attempt every
// gateway.happy_eyeballs_delay_ms or as soon as one fails, the first to connect wins and the
// others are closed), bounded by gateway.connect_timeout. Every socket carries
// tproxy.bypass_mark, so the capture rules never take the gateway's own traffic.
//
// The connector is an interface: a chained next-hop SOCKS connector (RFC 3089 §4) comes later.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <system_error>
#include <vector>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/system/result.hpp>

#include "gate46/common/address.hpp"

namespace gate46::gateway {

// Puts tproxy.bypass_mark on a socket of the gateway's own (SO_MARK, CAP_NET_ADMIN), so that the
// capture rules never take its traffic; a mark of 0 sets nothing.
boost::system::error_code set_bypass_mark(int fd, std::uint32_t mark) noexcept;

struct connect_settings {
  ip_family prefer = ip_family::v6;
  std::chrono::milliseconds attempt_delay{250};
  std::chrono::milliseconds timeout{10000};
  std::uint32_t bypass_mark = 0x47;  // 0: no SO_MARK
};

struct connect_attempt {
  ip_address address;
  std::error_code error;  // empty for the one that connected
};

struct connect_outcome {
  std::error_code error;  // empty on success; else the error that decides the SOCKS reply
  std::vector<connect_attempt> attempts;
  std::optional<ip_address> connected;         // the address that won, on success
  [[nodiscard]] std::string describe() const;  // "192.0.2.1: Connection refused, ..."
};

class connector {
 public:
  connector() = default;
  connector(const connector&) = delete;
  connector& operator=(const connector&) = delete;
  virtual ~connector() = default;

  // A connected socket on the caller's executor, or nothing and why (in `outcome`).
  virtual boost::asio::awaitable<std::optional<boost::asio::ip::tcp::socket>> connect(std::vector<ip_address> v6,
                                                                                      std::vector<ip_address> v4,
                                                                                      std::uint16_t port,
                                                                                      connect_outcome& outcome) = 0;
};

class direct_connector final : public connector {
 public:
  explicit direct_connector(connect_settings settings) : settings_{settings} {}
  boost::asio::awaitable<std::optional<boost::asio::ip::tcp::socket>> connect(std::vector<ip_address> v6,
                                                                              std::vector<ip_address> v4,
                                                                              std::uint16_t port,
                                                                              connect_outcome& outcome) override;

 private:
  connect_settings settings_;
};

}  // namespace gate46::gateway
