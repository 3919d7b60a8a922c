#include "gate46/common/address_watcher.hpp"

#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <exception>
#include <iterator>
#include <limits>
#include <mutex>
#include <system_error>
#include <utility>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/basic_raw_socket.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/generic/raw_protocol.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "gate46/common/log.hpp"

namespace gate46 {

namespace asio = boost::asio;

// ---- Pure part ---------------------------------------------------------------------------------

namespace rtnetlink {
namespace {

constexpr std::size_t header_size = sizeof(nlmsghdr);          // 16
constexpr std::size_t ifaddrmsg_size = sizeof(ifaddrmsg);      // 8
constexpr std::size_t ifinfomsg_size = sizeof(ifinfomsg);      // 16
constexpr std::size_t attribute_header_size = sizeof(rtattr);  // 4
static_assert(header_size == 16 && ifaddrmsg_size == 8 && ifinfomsg_size == 16 && attribute_header_size == 4);

constexpr std::size_t align4(std::size_t n) noexcept {
  return (n + 3U) & ~std::size_t{3};
}

// Precondition (checked by every caller): offset + sizeof(T) <= bytes.size().
template <typename T>
T load(std::span<const std::byte> bytes, std::size_t offset) noexcept {
  T value{};
  std::memcpy(&value, bytes.data() + offset, sizeof value);
  return value;
}

// Calls f(type, payload) for each attribute (type without the nested / byte-order bits). False
// if a length does not fit or f returns false: the caller drops the whole message.
template <typename F>
bool for_each_attribute(std::span<const std::byte> attributes, F&& f) {
  while (!attributes.empty()) {
    if (attributes.size() < attribute_header_size) {
      return false;
    }
    const auto length = load<std::uint16_t>(attributes, 0);
    const auto type = static_cast<std::uint16_t>(load<std::uint16_t>(attributes, 2) & NLA_TYPE_MASK);
    if (length < attribute_header_size || length > attributes.size()) {
      return false;
    }
    if (!f(type, attributes.subspan(attribute_header_size, length - attribute_header_size))) {
      return false;
    }
    // The last attribute may go without its padding, but not with part of it.
    const auto padded = align4(length);
    if (padded > attributes.size() && length != attributes.size()) {
      return false;
    }
    attributes = attributes.subspan(std::min(padded, attributes.size()));
  }
  return true;
}

// The message cut to the length its header gives (decode_header checked that it fits).
std::span<const std::byte> own_bytes(std::span<const std::byte> message, const message_header& header) {
  return message.first(header.length);
}

}  // namespace

split_result split_datagram(std::span<const std::byte> datagram) {
  split_result result;
  while (!datagram.empty()) {
    if (datagram.size() < header_size) {
      result.malformed = true;
      break;
    }
    const auto length = load<std::uint32_t>(datagram, 0);
    if (length < header_size || length > datagram.size()) {
      result.malformed = true;
      break;
    }
    result.messages.push_back(datagram.first(length));
    datagram = datagram.subspan(std::min<std::size_t>(align4(length), datagram.size()));
  }
  return result;
}

std::optional<message_header> decode_header(std::span<const std::byte> message) {
  if (message.size() < header_size) {
    return std::nullopt;
  }
  message_header header;
  header.length = load<std::uint32_t>(message, 0);
  header.type = load<std::uint16_t>(message, 4);
  header.flags = load<std::uint16_t>(message, 6);
  header.sequence = load<std::uint32_t>(message, 8);
  header.port_id = load<std::uint32_t>(message, 12);
  if (header.length < header_size || header.length > message.size()) {
    return std::nullopt;
  }
  return header;
}

std::optional<int> decode_status(std::span<const std::byte> message) {
  const auto header = decode_header(message);
  if (!header || (header->type != NLMSG_ERROR && header->type != NLMSG_DONE)) {
    return std::nullopt;
  }
  const auto payload = own_bytes(message, *header).subspan(header_size);
  if (payload.size() < sizeof(std::int32_t)) {
    // Some netlink families end a dump with an empty NLMSG_DONE; an error without its code is
    // no answer at all.
    return header->type == NLMSG_DONE ? std::optional<int>{0} : std::nullopt;
  }
  return load<std::int32_t>(payload, 0);
}

bool address_message::usable() const noexcept {
  if ((flags & IFA_F_DADFAILED) != 0U) {
    return false;
  }
  // An optimistic address (RFC 4429) is bindable while DAD runs: the kernel treats it so too.
  return (flags & IFA_F_TENTATIVE) == 0U || (flags & IFA_F_OPTIMISTIC) != 0U;
}

std::optional<address_message> decode_address_message(std::span<const std::byte> message) {
  const auto header = decode_header(message);
  if (!header || (header->type != RTM_NEWADDR && header->type != RTM_DELADDR)) {
    return std::nullopt;
  }
  const auto payload = own_bytes(message, *header).subspan(header_size);
  if (payload.size() < ifaddrmsg_size) {
    return std::nullopt;
  }
  // struct ifaddrmsg: family, prefix length, flags, scope (one byte each), interface index.
  const auto family = load<std::uint8_t>(payload, 0);
  std::size_t address_size = 0;
  unsigned max_prefix = 0;
  if (family == AF_INET) {
    address_size = 4;
    max_prefix = 32;
  } else if (family == AF_INET6) {
    address_size = 16;
    max_prefix = 128;
  } else {
    return std::nullopt;
  }
  address_message result;
  result.removed = header->type == RTM_DELADDR;
  result.prefix_length = load<std::uint8_t>(payload, 1);
  result.flags = load<std::uint8_t>(payload, 2);
  result.scope = static_cast<address_scope>(load<std::uint8_t>(payload, 3));
  result.interface_index = load<std::uint32_t>(payload, 4);
  if (result.prefix_length > max_prefix || result.interface_index == 0) {
    return std::nullopt;
  }

  std::optional<ip_address> local;
  std::optional<ip_address> address;
  const bool attributes_ok = for_each_attribute(
      payload.subspan(align4(ifaddrmsg_size)), [&](std::uint16_t type, std::span<const std::byte> data) {
        switch (type) {
          case IFA_ADDRESS:
          case IFA_LOCAL: {
            if (data.size() != address_size) {
              return false;
            }
            ip_address value;
            if (family == AF_INET) {
              std::array<std::uint8_t, 4> octets{};
              std::memcpy(octets.data(), data.data(), octets.size());
              value = ip_address::from_v4(octets);
            } else {
              ip_address::bytes_type bytes{};
              std::memcpy(bytes.data(), data.data(), bytes.size());
              value = ip_address::from_v6(bytes);
              // ::ffff:a.b.c.d on an interface would read as the IPv4 address with an IPv6
              // prefix length: not something the one address type can carry, so drop it.
              if (value.is_v4()) {
                return false;
              }
            }
            (type == IFA_LOCAL ? local : address) = value;
            return true;
          }
          case IFA_FLAGS:
            if (data.size() != sizeof(std::uint32_t)) {
              return false;
            }
            result.flags = load<std::uint32_t>(data, 0);
            return true;
          default:
            return true;  // labels, lifetimes, broadcast, protocol: not needed here
        }
      });
  if (!attributes_ok) {
    return std::nullopt;
  }
  if (local) {
    result.address = *local;
  } else if (address) {
    result.address = *address;
  } else {
    return std::nullopt;
  }
  return result;
}

std::optional<link_message> decode_link_message(std::span<const std::byte> message) {
  const auto header = decode_header(message);
  if (!header || (header->type != RTM_NEWLINK && header->type != RTM_DELLINK)) {
    return std::nullopt;
  }
  const auto payload = own_bytes(message, *header).subspan(header_size);
  if (payload.size() < ifinfomsg_size) {
    return std::nullopt;
  }
  // struct ifinfomsg: family, pad (one byte each), device type (u16), index (int), flags,
  // change mask (u32 each).
  if (load<std::uint8_t>(payload, 0) != AF_UNSPEC) {
    return std::nullopt;
  }
  const auto index = load<std::int32_t>(payload, 4);
  if (index <= 0) {
    return std::nullopt;
  }
  link_message result;
  result.removed = header->type == RTM_DELLINK;
  result.interface_index = static_cast<unsigned>(index);
  const bool attributes_ok =
      for_each_attribute(payload.subspan(ifinfomsg_size), [&](std::uint16_t type, std::span<const std::byte> data) {
        if (type != IFLA_IFNAME) {
          return true;
        }
        std::string name;
        for (const auto b : data) {
          if (b == std::byte{0}) {
            break;
          }
          name.push_back(static_cast<char>(b));
        }
        if (name.empty() || name.size() > 15) {  // IFNAMSIZ - 1
          return false;
        }
        result.name = std::move(name);
        return true;
      });
  if (!attributes_ok) {
    return std::nullopt;
  }
  return result;
}

std::vector<std::byte> encode_dump_request(dump_kind kind, std::uint32_t sequence) {
  const std::size_t family_header = kind == dump_kind::links ? ifinfomsg_size : ifaddrmsg_size;
  std::vector<std::byte> bytes(header_size + family_header);  // the family header stays zero
  nlmsghdr header{};
  header.nlmsg_len = static_cast<std::uint32_t>(bytes.size());
  header.nlmsg_type = kind == dump_kind::links ? RTM_GETLINK : RTM_GETADDR;
  header.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
  header.nlmsg_seq = sequence;
  header.nlmsg_pid = 0;
  std::memcpy(bytes.data(), &header, sizeof header);
  return bytes;
}

}  // namespace rtnetlink

bool interface_address::is_link_local() const noexcept {
  if (scope == address_scope::link) {
    return true;
  }
  if (address.is_v4()) {
    const auto octets = address.v4_bytes();
    return octets[0] == 169 && octets[1] == 254;
  }
  const auto& bytes = address.v6_bytes();
  return bytes[0] == 0xfe && (bytes[1] & 0xc0U) == 0x80;
}

std::string interface_address::to_string() const {
  return interface + ' ' + address.to_string() + '/' + std::to_string(prefix_length) +
         (is_link_local() ? " (link-local)" : "");
}

void address_table::apply(const rtnetlink::link_message& message) {
  if (message.removed) {
    links_.erase(message.interface_index);
    const auto first = addresses_.lower_bound(address_key{message.interface_index, ip_address{}, 0});
    auto last = first;
    while (last != addresses_.end() && last->first.interface_index == message.interface_index) {
      ++last;
    }
    addresses_.erase(first, last);
  } else if (message.name) {
    links_[message.interface_index] = *message.name;
  }
}

void address_table::apply(const rtnetlink::address_message& message) {
  const address_key key{message.interface_index, message.address, message.prefix_length};
  if (message.removed) {
    addresses_.erase(key);
  } else {
    addresses_.insert_or_assign(key, message);
  }
}

std::vector<interface_address> address_table::view(const std::vector<std::string>& interfaces) const {
  std::vector<interface_address> result;
  for (const auto& [key, message] : addresses_) {
    if (!message.usable()) {
      continue;
    }
    const auto link = links_.find(key.interface_index);
    if (link == links_.end() || std::find(interfaces.begin(), interfaces.end(), link->second) == interfaces.end()) {
      continue;
    }
    result.push_back({link->second, key.interface_index, key.address, key.prefix_length, message.scope});
  }
  std::sort(result.begin(), result.end());
  return result;
}

std::vector<address_change> diff(const std::vector<interface_address>& before,
                                 const std::vector<interface_address>& after) {
  std::vector<interface_address> removed;
  std::vector<interface_address> added;
  std::set_difference(before.begin(), before.end(), after.begin(), after.end(), std::back_inserter(removed));
  std::set_difference(after.begin(), after.end(), before.begin(), before.end(), std::back_inserter(added));
  std::vector<address_change> changes;
  changes.reserve(removed.size() + added.size());
  for (auto& a : removed) {
    changes.push_back({address_change::kind::removed, std::move(a)});
  }
  for (auto& a : added) {
    changes.push_back({address_change::kind::added, std::move(a)});
  }
  return changes;
}

// ---- The watcher -------------------------------------------------------------------------------

namespace {

// Events are small; dump datagrams are at most 32 KiB (the kernel sizes them after our receive
// buffer, capped there). A larger datagram arrives truncated and is treated as lost events.
constexpr std::size_t receive_buffer_size = std::size_t{64} * 1024;
// The kernel queue: room for a few thousand events before it overruns. SO_RCVBUFFORCE needs
// CAP_NET_ADMIN; otherwise SO_RCVBUF is capped by net.core.rmem_max.
constexpr int socket_receive_buffer = 1024 * 1024;
// Datagrams read per wake-up before giving the executor back.
constexpr int datagrams_per_wake = 64;
// Before asking again after a dump request failed (or the socket reported an unexpected error).
constexpr auto retry_delay = std::chrono::milliseconds{200};

std::shared_ptr<spdlog::logger> log() {
  return logger("address-watcher");
}

std::string join(const std::vector<std::string>& names) {
  std::string text;
  for (const auto& name : names) {
    text += (text.empty() ? "" : ", ") + name;
  }
  return text;
}

}  // namespace

struct address_watcher::subscription::entry {
  entry(callback f, std::weak_ptr<address_watcher::impl> o) : cb{std::move(f)}, owner{std::move(o)} {}
  callback cb;
  std::weak_ptr<address_watcher::impl> owner;
  std::atomic<bool> active{true};
  bool live = false;  // strand only: has had the replay of the current state
};

struct address_watcher::impl {
  using raw_socket = asio::basic_raw_socket<asio::generic::raw_protocol>;
  using subscriber = std::shared_ptr<subscription::entry>;

  impl(const asio::any_io_executor& executor, std::vector<std::string> names);

  static asio::awaitable<void> run(std::shared_ptr<impl> self);
  static asio::awaitable<boost::system::error_code> wait_ready_on_strand(std::shared_ptr<impl> self);

  void receive_available(std::vector<std::byte>& buffer);
  void handle_datagram(std::span<const std::byte> datagram);
  void handle_message(std::span<const std::byte> message);
  void handle_dump_reply(const rtnetlink::message_header& header, std::span<const std::byte> message);
  void start_dump();
  void request(rtnetlink::dump_kind kind);
  void retry_dump_later();
  void events_lost(std::string_view why);
  void publish();
  void notify(const std::vector<address_change>& changes);
  void call(subscription::entry& e, const address_change& change) const;
  void replay(const subscriber& e);
  void close() noexcept;

  asio::strand<asio::any_io_executor> strand_;
  raw_socket socket_;
  asio::steady_timer retry_timer_;
  asio::steady_timer ready_event_;  // never expires: cancelled once ready (or stopped)
  const std::vector<std::string> interfaces_;
  std::uint32_t port_id_ = 0;

  // Strand only.
  enum class stage : std::uint8_t {
    idle,       // table_ is current; events apply to it
    waiting,    // a dump is due after retry_delay; events are ignored (the dump will cover them)
    links,      // RTM_GETLINK dump under way
    addresses,  // RTM_GETADDR dump under way
  };
  struct dump_state {
    stage current = stage::waiting;
    std::uint32_t sequence = 0;
    bool started = false;  // a reply to this request has arrived
    bool again = false;    // inconsistent or events lost: dump again once this one ends
    address_table table;   // being built
  };
  dump_state dump_;
  address_table table_;
  bool table_changed_ = false;
  std::vector<interface_address> view_;
  std::uint32_t next_sequence_ = 1;

  // Any thread.
  mutable std::mutex published_mutex_;
  std::vector<interface_address> published_;  // guarded by published_mutex_
  mutable std::mutex subscribers_mutex_;
  std::vector<subscriber> subscribers_;  // guarded by subscribers_mutex_
  std::atomic<bool> ready_{false};
  std::atomic<bool> stopped_{false};
  std::atomic<std::uint64_t> dumps_{0};
  std::atomic<std::uint64_t> overruns_{0};
  std::atomic<std::uint64_t> bad_datagrams_{0};
};

address_watcher::impl::impl(const asio::any_io_executor& executor, std::vector<std::string> names)
    : strand_{asio::make_strand(executor)},
      socket_{strand_},
      retry_timer_{strand_},
      ready_event_{strand_, asio::steady_timer::time_point::max()},
      interfaces_{std::move(names)} {
  const int fd = ::socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, NETLINK_ROUTE);
  if (fd < 0) {
    throw std::system_error{errno, std::generic_category(), "address watcher: rtnetlink socket"};
  }
  boost::system::error_code ec;
  socket_.assign(asio::generic::raw_protocol{AF_NETLINK, NETLINK_ROUTE}, fd, ec);
  if (ec) {
    ::close(fd);
    throw std::system_error{ec, "address watcher: rtnetlink socket"};
  }
  const int size = socket_receive_buffer;
  if (::setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof size) != 0) {
    ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof size);  // best effort
  }
  sockaddr_nl local{};
  local.nl_family = AF_NETLINK;
  local.nl_groups = RTMGRP_LINK | RTMGRP_IPV4_IFADDR | RTMGRP_IPV6_IFADDR;
  if (::bind(fd, reinterpret_cast<const sockaddr*>(&local), sizeof local) != 0) {
    throw std::system_error{errno, std::generic_category(), "address watcher: bind rtnetlink socket"};
  }
  socklen_t length = sizeof local;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&local), &length) != 0) {
    throw std::system_error{errno, std::generic_category(), "address watcher: rtnetlink socket name"};
  }
  port_id_ = local.nl_pid;
}

asio::awaitable<void> address_watcher::impl::run(std::shared_ptr<impl> self) {
  try {
    std::vector<std::byte> buffer(receive_buffer_size);
    if (!self->stopped_) {
      self->start_dump();
    }
    while (!self->stopped_) {
      if (self->dump_.current == stage::waiting) {
        self->retry_timer_.expires_after(retry_delay);
        co_await self->retry_timer_.async_wait(asio::as_tuple(asio::use_awaitable));
        if (!self->stopped_) {
          self->start_dump();
        }
        continue;
      }
      const auto [ec] = co_await self->socket_.async_wait(raw_socket::wait_read, asio::as_tuple(asio::use_awaitable));
      if (self->stopped_) {
        break;
      }
      if (ec) {
        log()->error("waiting on the rtnetlink socket: {}", ec.message());
        self->retry_dump_later();  // a pause, then everything read again
        continue;
      }
      self->receive_available(buffer);
      if (self->table_changed_ && self->dump_.current == stage::idle) {
        self->publish();
      }
    }
  } catch (const std::exception& e) {
    log()->critical("address watcher stopped: {}", e.what());
  }
  self->stopped_ = true;
  self->close();
}

void address_watcher::impl::receive_available(std::vector<std::byte>& buffer) {
  for (int i = 0; i < datagrams_per_wake && !stopped_; ++i) {
    iovec vector{buffer.data(), buffer.size()};
    sockaddr_nl from{};
    msghdr header{};
    header.msg_name = &from;
    header.msg_namelen = sizeof from;
    header.msg_iov = &vector;
    header.msg_iovlen = 1;
    const auto received = ::recvmsg(socket_.native_handle(), &header, MSG_DONTWAIT);
    if (received < 0) {
      const int error = errno;
      if (error == EINTR) {
        continue;
      }
      if (error == EAGAIN || error == EWOULDBLOCK) {
        return;
      }
      if (error == ENOBUFS) {
        ++overruns_;
        events_lost("rtnetlink overrun (ENOBUFS)");
        continue;
      }
      log()->error("reading the rtnetlink socket: {}", std::generic_category().message(error));
      retry_dump_later();  // a pause, then everything read again
      return;
    }
    if ((header.msg_flags & MSG_TRUNC) != 0) {
      ++bad_datagrams_;
      events_lost("truncated datagram");
      continue;
    }
    if (header.msg_namelen < sizeof from || from.nl_family != AF_NETLINK || from.nl_pid != 0) {
      ++bad_datagrams_;  // not from the kernel: ignored
      continue;
    }
    handle_datagram(std::span<const std::byte>{buffer.data(), static_cast<std::size_t>(received)});
  }
}

void address_watcher::impl::handle_datagram(std::span<const std::byte> datagram) {
  const auto split = rtnetlink::split_datagram(datagram);
  for (const auto message : split.messages) {
    handle_message(message);
  }
  if (split.malformed) {
    ++bad_datagrams_;
    events_lost("malformed datagram");
  }
}

void address_watcher::impl::handle_message(std::span<const std::byte> message) {
  const auto header = rtnetlink::decode_header(message);
  if (!header) {
    return;  // split_datagram only yields messages with a header
  }
  if (header->port_id == port_id_) {
    const bool dumping = dump_.current == stage::links || dump_.current == stage::addresses;
    if (dumping && header->sequence == dump_.sequence) {
      handle_dump_reply(*header, message);
    }
    return;  // otherwise the rest of a dump we gave up on
  }
  // An event. Queue order is the kernel's order: a dump reply reflects every event queued
  // before it, so events queued before a dump's first reply are already in that dump (and
  // would be stale applied after it), while those after its first reply are applied on top.
  switch (header->type) {
    case RTM_NEWLINK:
    case RTM_DELLINK:
      if (const auto link = rtnetlink::decode_link_message(message)) {
        if (dump_.current == stage::idle) {
          table_.apply(*link);
          table_changed_ = true;
        } else if (dump_.current == stage::addresses || (dump_.current == stage::links && dump_.started)) {
          dump_.table.apply(*link);
        }
      }
      break;
    case RTM_NEWADDR:
    case RTM_DELADDR:
      if (const auto address = rtnetlink::decode_address_message(message)) {
        if (dump_.current == stage::idle) {
          table_.apply(*address);
          table_changed_ = true;
        } else if (dump_.current == stage::addresses && dump_.started) {
          dump_.table.apply(*address);
        }
      }
      break;
    default:
      break;
  }
}

void address_watcher::impl::handle_dump_reply(const rtnetlink::message_header& header,
                                              std::span<const std::byte> message) {
  dump_.started = true;
  if ((header.flags & NLM_F_DUMP_INTR) != 0) {
    dump_.again = true;  // the kernel's lists changed under the dump
  }
  switch (header.type) {
    case NLMSG_DONE: {
      const auto status = rtnetlink::decode_status(message).value_or(0);
      if (status < 0) {
        log()->warn("rtnetlink dump failed: {}", std::generic_category().message(-status));
        retry_dump_later();
        return;
      }
      if (dump_.again) {
        log()->info("rtnetlink dump inconsistent or events lost during it: dumping again");
        start_dump();
        return;
      }
      if (dump_.current == stage::links) {
        request(rtnetlink::dump_kind::addresses);
        return;
      }
      table_ = std::move(dump_.table);
      dump_ = dump_state{};
      dump_.current = stage::idle;
      ++dumps_;
      publish();
      if (!ready_.exchange(true)) {
        log()->info("following {}: {} addresses", join(interfaces_), view_.size());
        ready_event_.cancel();
      }
      return;
    }
    case NLMSG_ERROR: {
      const auto status = rtnetlink::decode_status(message);
      if (!status || *status != 0) {
        log()->warn("rtnetlink dump request refused: {}",
                    status ? std::generic_category().message(-*status) : std::string{"no error code"});
        retry_dump_later();
      }
      return;
    }
    case RTM_NEWLINK:
      if (dump_.current == stage::links) {
        if (const auto link = rtnetlink::decode_link_message(message)) {
          dump_.table.apply(*link);
        }
      }
      return;
    case RTM_NEWADDR:
      if (dump_.current == stage::addresses) {
        if (const auto address = rtnetlink::decode_address_message(message)) {
          dump_.table.apply(*address);
        }
      }
      return;
    default:
      return;
  }
}

void address_watcher::impl::start_dump() {
  dump_ = dump_state{};
  request(rtnetlink::dump_kind::links);
}

void address_watcher::impl::request(rtnetlink::dump_kind kind) {
  dump_.current = kind == rtnetlink::dump_kind::links ? stage::links : stage::addresses;
  dump_.sequence = next_sequence_++;
  dump_.started = false;
  const auto bytes = rtnetlink::encode_dump_request(kind, dump_.sequence);
  // To the kernel (port 0), the default destination of an unconnected netlink socket; the
  // kernel handles the request before send() returns.
  if (::send(socket_.native_handle(), bytes.data(), bytes.size(), MSG_DONTWAIT) < 0) {
    log()->warn("rtnetlink dump request: {}", std::generic_category().message(errno));
    retry_dump_later();
  }
}

void address_watcher::impl::retry_dump_later() {
  dump_ = dump_state{};
  dump_.current = stage::waiting;
}

void address_watcher::impl::events_lost(std::string_view why) {
  switch (dump_.current) {
    case stage::idle:
      log()->warn("{}: reading the addresses again", why);
      start_dump();
      break;
    case stage::links:
    case stage::addresses:
      dump_.again = true;
      break;
    case stage::waiting:
      break;
  }
}

void address_watcher::impl::publish() {
  table_changed_ = false;
  auto next = table_.view(interfaces_);
  const auto changes = diff(view_, next);
  if (changes.empty()) {
    return;
  }
  view_ = next;
  {
    const std::lock_guard lock{published_mutex_};
    published_ = std::move(next);
  }
  for (const auto& change : changes) {
    log()->debug("{} {}", change.what == address_change::kind::added ? "added" : "removed", change.address.to_string());
  }
  notify(changes);
}

void address_watcher::impl::notify(const std::vector<address_change>& changes) {
  std::vector<subscriber> subscribers;
  {
    const std::lock_guard lock{subscribers_mutex_};
    subscribers = subscribers_;
  }
  for (const auto& s : subscribers) {
    if (!s->live) {
      continue;  // its replay, still queued, will include these
    }
    for (const auto& change : changes) {
      call(*s, change);
    }
  }
}

void address_watcher::impl::call(subscription::entry& e, const address_change& change) const {
  if (stopped_ || !e.active) {
    return;
  }
  try {
    e.cb(change);
  } catch (const std::exception& ex) {
    log()->error("address subscriber failed: {}", ex.what());
  } catch (...) {
    log()->error("address subscriber failed: unknown exception");
  }
}

void address_watcher::impl::replay(const subscriber& e) {
  for (const auto& a : view_) {
    call(*e, address_change{address_change::kind::added, a});
  }
  e->live = true;
}

void address_watcher::impl::close() noexcept {
  boost::system::error_code ignored;
  socket_.close(ignored);
  retry_timer_.cancel();
  ready_event_.cancel();
}

asio::awaitable<boost::system::error_code> address_watcher::impl::wait_ready_on_strand(std::shared_ptr<impl> self) {
  if (!self->ready_ && !self->stopped_) {
    co_await self->ready_event_.async_wait(asio::as_tuple(asio::use_awaitable));
  }
  co_return self->ready_ ? boost::system::error_code{} : boost::system::error_code{asio::error::operation_aborted};
}

// ---- Public interface --------------------------------------------------------------------------

address_watcher::address_watcher(const asio::any_io_executor& executor, std::vector<std::string> interfaces)
    : impl_{std::make_shared<impl>(executor, std::move(interfaces))} {
  asio::co_spawn(impl_->strand_, impl::run(impl_), asio::detached);
}

address_watcher::~address_watcher() {
  stop();
}

std::vector<interface_address> address_watcher::snapshot() const {
  const std::lock_guard lock{impl_->published_mutex_};
  return impl_->published_;
}

bool address_watcher::ready() const noexcept {
  return impl_->ready_;
}

address_watcher::statistics address_watcher::stats() const noexcept {
  return {impl_->dumps_.load(), impl_->overruns_.load(), impl_->bad_datagrams_.load()};
}

address_watcher::subscription address_watcher::subscribe(callback cb) {
  auto e = std::make_shared<subscription::entry>(std::move(cb), impl_);
  {
    const std::lock_guard lock{impl_->subscribers_mutex_};
    impl_->subscribers_.push_back(e);
  }
  asio::post(impl_->strand_, [self = impl_, e] { self->replay(e); });
  return subscription{std::move(e)};
}

asio::awaitable<boost::system::error_code> address_watcher::wait_ready() {
  auto self = impl_;
  co_return co_await asio::co_spawn(self->strand_, impl::wait_ready_on_strand(self), asio::use_awaitable);
}

void address_watcher::stop() noexcept {
  if (!impl_ || impl_->stopped_.exchange(true)) {
    return;
  }
  try {
    asio::dispatch(impl_->strand_, [self = impl_] { self->close(); });
  } catch (const std::exception& e) {
    log()->critical("address watcher: cannot stop: {}", e.what());
    std::abort();
  }
}

address_watcher::subscription& address_watcher::subscription::operator=(subscription&& other) noexcept {
  if (this != &other) {
    reset();
    entry_ = std::move(other.entry_);
  }
  return *this;
}

void address_watcher::subscription::reset() noexcept {
  if (!entry_) {
    return;
  }
  entry_->active = false;
  if (const auto owner = entry_->owner.lock()) {
    const std::lock_guard lock{owner->subscribers_mutex_};
    std::erase(owner->subscribers_, entry_);
  }
  entry_.reset();
}

}  // namespace gate46
