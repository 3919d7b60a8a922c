// The addresses of a set of interfaces (lan.interfaces), followed through rtnetlink: one dump
// at start, then the kernel's RTM_NEWADDR / RTM_DELADDR events, and link events so that an
// interface created, renamed or deleted later is handled. The DNS servers, the SOCKS listener
// and the gateway's deny-list follow it.
//
// What is reported: every IPv4 and IPv6 address the kernel lists on a watched interface once it
// is usable, i.e. a socket can bind it: IPv6 addresses still in duplicate address detection
// (tentative, not optimistic) appear only when DAD completes, and never when it fails.
// Link-local addresses are included and marked (scope, is_link_local()); consumers that cannot
// use them skip them. Entries are keyed by (interface, address, prefix length): the same address
// on two interfaces is two entries, and a renamed interface's addresses are removed under the
// old name and added under the new one.
//
// Overruns (ENOBUFS: the kernel dropped events because the socket buffer was full), truncated or
// malformed datagrams and interrupted dumps are repaired by dumping again and reporting the
// difference, so subscribers always see a sequence of changes that leads to the true state.
//
// The bottom half of this header is the pure part (decoding rtnetlink messages, the table of
// links and addresses, diffs): functions over bytes and values, no sockets, unit-tested.
#pragma once

#include <compare>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/system/error_code.hpp>

#include "gate46/common/address.hpp"

namespace gate46 {

// The kernel's address scope (RT_SCOPE_*) as rtnetlink reports it; other values are possible.
enum class address_scope : std::uint8_t { global = 0, site = 200, link = 253, host = 254, nowhere = 255 };

struct interface_address {
  std::string interface;         // its name, as in lan.interfaces
  unsigned interface_index = 0;  // for binding a link-local address (sin6_scope_id)
  ip_address address;
  unsigned prefix_length = 0;  // in the family's own terms (0-32, 0-128)
  address_scope scope = address_scope::global;

  // fe80::/10, 169.254.0.0/16, or link scope: usable only together with the interface.
  [[nodiscard]] bool is_link_local() const noexcept;
  // "lan0 192.0.2.1/24", "lan0 fe80::1/64 (link-local)".
  [[nodiscard]] std::string to_string() const;

  friend auto operator<=>(const interface_address&, const interface_address&) = default;
  friend bool operator==(const interface_address&, const interface_address&) = default;
};

struct address_change {
  enum class kind : std::uint8_t { added, removed };
  kind what = kind::added;
  interface_address address;

  friend bool operator==(const address_change&, const address_change&) = default;
};

// Thread-safety: snapshot(), ready(), stats(), subscribe(), wait_ready() and stop() may be called
// from any thread. Everything else happens on a strand of the executor given at construction:
// the read loop, and every subscriber call.
//
// Lifetime: the watcher must be destroyed before the execution context of its executor (like any
// Asio I/O object). Destroying it stops it; work still queued on the executor keeps what it needs
// alive and ends at once.
class address_watcher {
 public:
  using callback = std::function<void(const address_change&)>;

  // Unsubscribes when destroyed or reset. Move-only.
  class subscription {
   public:
    subscription() = default;
    subscription(subscription&&) noexcept = default;
    subscription& operator=(subscription&& other) noexcept;
    subscription(const subscription&) = delete;
    subscription& operator=(const subscription&) = delete;
    ~subscription() { reset(); }
    // No call starts after this returns when made on the watcher's strand (from inside a
    // callback, say); from another thread a call already under way may still finish.
    void reset() noexcept;

   private:
    friend class address_watcher;
    struct entry;
    explicit subscription(std::shared_ptr<entry> e) : entry_{std::move(e)} {}
    std::shared_ptr<entry> entry_;
  };

  struct statistics {
    std::uint64_t dumps = 0;          // full dumps completed (1 after start, +1 per repair)
    std::uint64_t overruns = 0;       // ENOBUFS from the kernel: events were lost
    std::uint64_t bad_datagrams = 0;  // truncated, malformed, or not from the kernel
  };

  // Opens an rtnetlink socket in the network namespace of the calling thread, joins the link,
  // IPv4-address and IPv6-address groups, and starts following on a strand of `executor`.
  // Throws std::system_error if the socket cannot be opened or bound.
  address_watcher(const boost::asio::any_io_executor& executor, std::vector<std::string> interfaces);
  address_watcher(const address_watcher&) = delete;
  address_watcher& operator=(const address_watcher&) = delete;
  ~address_watcher();  // stop()

  // The usable addresses of the watched interfaces, sorted; empty until ready().
  [[nodiscard]] std::vector<interface_address> snapshot() const;
  // True once the initial dump is complete (snapshot() is then the kernel's state).
  [[nodiscard]] bool ready() const noexcept;
  [[nodiscard]] statistics stats() const noexcept;

  // Calls `cb` on the watcher's strand, first with `added` for every address already known (none
  // before ready()), then with every change, removals before additions within one update. So a
  // subscriber never has to combine snapshot() with the stream. An exception from `cb` is logged
  // and otherwise ignored.
  [[nodiscard]] subscription subscribe(callback cb);

  // Completes (on the caller's executor) once the initial dump is complete: an empty error_code;
  // or operation_aborted if the watcher stops first or the wait is cancelled (it supports
  // per-operation cancellation, so `co_await (w.wait_ready() || timer.async_wait(...))` works).
  boost::asio::awaitable<boost::system::error_code> wait_ready();

  // Closes the socket (on the strand) and ends the read loop; no subscriber call starts after
  // stop() returns when it is called on the strand. Idempotent.
  void stop() noexcept;

 private:
  struct impl;
  std::shared_ptr<impl> impl_;
};

// ---- The pure part: rtnetlink bytes in, values out (native byte order, as the kernel sends). --

namespace rtnetlink {

// The fixed header of one netlink message (struct nlmsghdr).
struct message_header {
  std::uint32_t length = 0;  // of the whole message, header included
  std::uint16_t type = 0;    // NLMSG_DONE, NLMSG_ERROR, RTM_NEWADDR, ...
  std::uint16_t flags = 0;   // NLM_F_MULTI, NLM_F_DUMP_INTR, ...
  std::uint32_t sequence = 0;
  std::uint32_t port_id = 0;  // the requester's port for replies; 0 or the cause's for events
};

// A datagram cut into its messages. `malformed`: a length was inconsistent; the messages before
// it are listed, the rest of the datagram is dropped.
struct split_result {
  std::vector<std::span<const std::byte>> messages;  // each with its header
  bool malformed = false;
};
[[nodiscard]] split_result split_datagram(std::span<const std::byte> datagram);

// The header of a message (as cut by split_datagram), or nullopt if shorter than one.
[[nodiscard]] std::optional<message_header> decode_header(std::span<const std::byte> message);

// The error code of an NLMSG_ERROR (0 is an acknowledgement, else -errno) or of an NLMSG_DONE
// (0, or -errno if the dump failed). nullopt if the message is neither or too short.
[[nodiscard]] std::optional<int> decode_status(std::span<const std::byte> message);

struct address_message {
  bool removed = false;  // RTM_DELADDR
  unsigned interface_index = 0;
  ip_address address;  // IFA_LOCAL if present (the local end of a point-to-point), else IFA_ADDRESS
  unsigned prefix_length = 0;
  address_scope scope = address_scope::global;
  std::uint32_t flags = 0;  // IFA_F_*, from IFA_FLAGS when present (it holds the upper bits)

  // Bindable: not tentative (unless optimistic) and DAD has not failed.
  [[nodiscard]] bool usable() const noexcept;
};

// RTM_NEWADDR / RTM_DELADDR for AF_INET or AF_INET6. nullopt for any other type or family, an
// attribute length that does not fit, an address of the wrong size, a prefix longer than the
// family allows, or no address at all: the whole message is dropped.
[[nodiscard]] std::optional<address_message> decode_address_message(std::span<const std::byte> message);

struct link_message {
  bool removed = false;  // RTM_DELLINK
  unsigned interface_index = 0;
  std::optional<std::string> name;  // IFLA_IFNAME (1-15 characters), when present
};

// RTM_NEWLINK / RTM_DELLINK about the link itself (family AF_UNSPEC). nullopt for any other type,
// for AF_BRIDGE messages (a port joining or leaving a bridge, not the link coming or going), a
// bad length, or a bad name.
[[nodiscard]] std::optional<link_message> decode_link_message(std::span<const std::byte> message);

// RTM_GETLINK or RTM_GETADDR with NLM_F_REQUEST | NLM_F_DUMP, all families, port 0 (the kernel
// fills in the sender's).
enum class dump_kind : std::uint8_t { links, addresses };
[[nodiscard]] std::vector<std::byte> encode_dump_request(dump_kind kind, std::uint32_t sequence);

}  // namespace rtnetlink

// The kernel's links (index -> name) and addresses as the messages described them, and the view
// of it a watcher publishes. A regular value; not thread-safe.
class address_table {
 public:
  void apply(const rtnetlink::link_message& message);
  void apply(const rtnetlink::address_message& message);

  // The usable addresses on links named in `interfaces`, sorted. Addresses on a link whose name
  // is not known (yet) are left out.
  [[nodiscard]] std::vector<interface_address> view(const std::vector<std::string>& interfaces) const;

  [[nodiscard]] std::size_t link_count() const noexcept { return links_.size(); }
  [[nodiscard]] std::size_t address_count() const noexcept { return addresses_.size(); }

 private:
  struct address_key {
    unsigned interface_index = 0;
    ip_address address;
    unsigned prefix_length = 0;
    friend auto operator<=>(const address_key&, const address_key&) = default;
  };
  std::map<unsigned, std::string> links_;
  std::map<address_key, rtnetlink::address_message> addresses_;
};

// The changes that turn `before` into `after` (both sorted, as view() returns them): removals
// first, then additions, each in order.
[[nodiscard]] std::vector<address_change> diff(const std::vector<interface_address>& before,
                                               const std::vector<interface_address>& after);

}  // namespace gate46
