#include "gate46/tproxy/routing.hpp"

#include <linux/fib_rules.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <string>
#include <string_view>
#include <system_error>

namespace gate46::tproxy {
namespace {

constexpr std::size_t align(std::size_t n) {
  return (n + 3U) & ~std::size_t{3};
}

// An rtnetlink request being built: header, fixed part, attributes.
class request {
 public:
  request(std::uint16_t type, std::uint16_t flags, std::uint32_t seq) {
    nlmsghdr h{};
    h.nlmsg_type = type;
    h.nlmsg_flags = flags;
    h.nlmsg_seq = seq;
    append(&h, sizeof h);
  }
  template <typename T>
  void fixed(const T& body) {
    append(&body, sizeof body);
  }
  void u32_attribute(std::uint16_t type, std::uint32_t value) {
    rtattr a{};
    a.rta_type = type;
    a.rta_len = static_cast<std::uint16_t>(RTA_LENGTH(sizeof value));
    append(&a, sizeof a);
    append(&value, sizeof value);
  }
  void string_attribute(std::uint16_t type, std::string_view value) {
    rtattr a{};
    a.rta_type = type;
    a.rta_len = static_cast<std::uint16_t>(RTA_LENGTH(value.size() + 1));
    append_unpadded(&a, sizeof a);
    append_unpadded(value.data(), value.size());
    append("", 1);  // the NUL, then the padding
  }
  std::vector<std::uint8_t> done() {
    const auto length = static_cast<std::uint32_t>(bytes_.size());
    std::memcpy(bytes_.data() + offsetof(nlmsghdr, nlmsg_len), &length, sizeof length);
    return std::move(bytes_);
  }

 private:
  void append(const void* data, std::size_t size) {
    append_unpadded(data, size);
    bytes_.resize(align(bytes_.size()), 0);
  }
  void append_unpadded(const void* data, std::size_t size) {
    const auto* p = static_cast<const std::uint8_t*>(data);
    bytes_.insert(bytes_.end(), p, p + size);
  }
  std::vector<std::uint8_t> bytes_;
};

std::uint16_t flags_for(netlink_op op) {
  return static_cast<std::uint16_t>(NLM_F_REQUEST | NLM_F_ACK |
                                    (op == netlink_op::add ? NLM_F_CREATE | NLM_F_EXCL : 0));
}

std::uint8_t af(ip_family family) {
  return family == ip_family::v4 ? AF_INET : AF_INET6;
}

// Sends one request and reads its acknowledgement: 0 or the negative errno the kernel gave.
int exchange(int fd, const std::vector<std::uint8_t>& message) {
  sockaddr_nl kernel{};
  kernel.nl_family = AF_NETLINK;
  if (sendto(fd, message.data(), message.size(), 0, reinterpret_cast<const sockaddr*>(&kernel), sizeof kernel) < 0) {
    return -errno;
  }
  std::array<std::uint8_t, 8192> buffer{};
  const auto n = recv(fd, buffer.data(), buffer.size(), 0);
  if (n < static_cast<ssize_t>(NLMSG_LENGTH(sizeof(nlmsgerr)))) {
    return n < 0 ? -errno : -EPROTO;
  }
  nlmsghdr h{};
  std::memcpy(&h, buffer.data(), sizeof h);
  if (h.nlmsg_type != NLMSG_ERROR) {
    return -EPROTO;
  }
  nlmsgerr e{};
  std::memcpy(&e, buffer.data() + NLMSG_HDRLEN, sizeof e);
  return e.error;
}

class netlink_socket {
 public:
  netlink_socket() : fd_{socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE)} {
    if (fd_ < 0) {
      throw routing_error{"rtnetlink socket: " + std::generic_category().message(errno)};
    }
  }
  netlink_socket(const netlink_socket&) = delete;
  netlink_socket& operator=(const netlink_socket&) = delete;
  ~netlink_socket() { close(fd_); }
  [[nodiscard]] int fd() const noexcept { return fd_; }

 private:
  int fd_;
};

void check(int error, int tolerated, const std::string& what) {
  if (error == 0 || error == -tolerated) {
    return;
  }
  auto text = what + ": " + std::generic_category().message(-error);
  if (error == -EPERM) {
    text += " (CAP_NET_ADMIN is needed)";
  }
  throw routing_error{text};
}

std::string describe(const char* object, ip_family family, const routing_settings& s) {
  return std::string{family == ip_family::v4 ? "ip" : "ip -6"} + " " + object + " (fwmark " + std::to_string(s.mark) +
         "/" + std::to_string(s.mask) + ", table " + std::to_string(s.table) + ")";
}

}  // namespace

routing_settings routing_settings_of(const config& cfg) {
  return {cfg.tproxy.mark, cfg.tproxy.mark_mask, cfg.tproxy.route_table, cfg.tproxy.rule_priority};
}

std::vector<std::uint8_t> rule_message(netlink_op op, ip_family family, const routing_settings& s, std::uint32_t seq) {
  request r{static_cast<std::uint16_t>(op == netlink_op::add ? RTM_NEWRULE : RTM_DELRULE), flags_for(op), seq};
  fib_rule_hdr rule{};
  rule.family = af(family);
  rule.table = static_cast<std::uint8_t>(s.table < 256 ? s.table : std::uint32_t{RT_TABLE_UNSPEC});
  rule.action = FR_ACT_TO_TBL;
  r.fixed(rule);
  r.u32_attribute(FRA_PRIORITY, s.priority);
  r.u32_attribute(FRA_FWMARK, s.mark);
  r.u32_attribute(FRA_FWMASK, s.mask);
  r.u32_attribute(FRA_TABLE, s.table);
  return r.done();
}

std::vector<std::uint8_t> source_check_rule_message(netlink_op op, const routing_settings& s, std::uint32_t seq) {
  request r{static_cast<std::uint16_t>(op == netlink_op::add ? RTM_NEWRULE : RTM_DELRULE), flags_for(op), seq};
  fib_rule_hdr rule{};
  rule.family = AF_INET;
  rule.table = RT_TABLE_MAIN;
  rule.action = FR_ACT_TO_TBL;
  r.fixed(rule);
  r.u32_attribute(FRA_PRIORITY, s.priority - 1);
  r.string_attribute(FRA_IFNAME, "lo");
  r.u32_attribute(FRA_FWMARK, s.mark);
  r.u32_attribute(FRA_FWMASK, s.mask);
  r.u32_attribute(FRA_TABLE, RT_TABLE_MAIN);
  return r.done();
}

std::vector<std::uint8_t> route_message(netlink_op op, ip_family family, const routing_settings& s,
                                        std::uint32_t loopback_index, std::uint32_t seq) {
  request r{static_cast<std::uint16_t>(op == netlink_op::add ? RTM_NEWROUTE : RTM_DELROUTE), flags_for(op), seq};
  rtmsg route{};
  route.rtm_family = af(family);
  route.rtm_table = static_cast<std::uint8_t>(s.table < 256 ? s.table : std::uint32_t{RT_TABLE_UNSPEC});
  route.rtm_protocol = RTPROT_BOOT;  // what `ip route add` uses
  route.rtm_scope = RT_SCOPE_HOST;
  route.rtm_type = RTN_LOCAL;
  r.fixed(route);
  r.u32_attribute(RTA_TABLE, s.table);
  r.u32_attribute(RTA_OIF, loopback_index);
  return r.done();
}

void add_policy_routing(const routing_settings& s) {
  const netlink_socket nl;
  const auto lo = if_nametoindex("lo");
  std::uint32_t seq = 1;
  for (const auto family : {ip_family::v4, ip_family::v6}) {
    check(exchange(nl.fd(), route_message(netlink_op::add, family, s, lo, seq++)), EEXIST,
          describe("route add local default dev lo", family, s));
    check(exchange(nl.fd(), rule_message(netlink_op::add, family, s, seq++)), EEXIST, describe("rule add", family, s));
  }
  check(exchange(nl.fd(), source_check_rule_message(netlink_op::add, s, seq++)), EEXIST,
        describe("rule add iif lo", ip_family::v4, s));
}

void remove_policy_routing(const routing_settings& s) {
  const netlink_socket nl;
  const auto lo = if_nametoindex("lo");
  std::uint32_t seq = 1;
  check(exchange(nl.fd(), source_check_rule_message(netlink_op::remove, s, seq++)), ENOENT,
        describe("rule del iif lo", ip_family::v4, s));
  for (const auto family : {ip_family::v4, ip_family::v6}) {
    check(exchange(nl.fd(), rule_message(netlink_op::remove, family, s, seq++)), ENOENT,
          describe("rule del", family, s));
    // ESRCH: the kernel's answer for a route that is not there.
    const int error = exchange(nl.fd(), route_message(netlink_op::remove, family, s, lo, seq++));
    check(error == -ESRCH ? 0 : error, ENOENT, describe("route del local default dev lo", family, s));
  }
}

}  // namespace gate46::tproxy
