// What the SOCKS server and the transparent relay share about their sessions: the registry of
// open sessions, so that stopping a server can close every one (a session registers a closer:
// close my client socket, later abort my relay, and removes itself when it ends) and the control
// socket can list the flows being relayed; the drain at stop, and the totals of ended flows.
//
// Thread-safety: every member may be called from any thread; closers are called without the
// lock held and must only post work to their session's executor.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include <boost/asio/awaitable.hpp>

#include "gate46/common/address.hpp"
#include "gate46/common/component.hpp"
#include "gate46/gateway/relay.hpp"

namespace gate46::gateway {

// Who talks to whom through a relayed flow, for `gate46ctl flows`.
struct flow_description {
  endpoint client;
  std::string destination;  // the fake address and port, or the SOCKS target as requested
  std::string name;         // empty when the client gave an address outside the pools
  endpoint target;          // the real address the gateway connected to; port 0: none (a UDP association)
};

class session_registry {
 public:
  using closer = std::function<void()>;

  // An id for remove()/replace(); 0 when the registry is closing (the caller closes at once).
  std::uint64_t add(closer c) {
    const std::lock_guard lock{mutex_};
    if (closing_) {
      return 0;
    }
    const auto id = ++last_id_;
    sessions_.emplace(id, session{std::move(c), {}});
    return id;
  }

  // Records the session's relay (from now on its closer aborts the relay) and what flows
  // through it; false when the registry closed meanwhile (the caller aborts the flow).
  bool relaying(std::uint64_t id, const std::shared_ptr<relay_flow>& flow, flow_description description);

  // The flows being relayed now, oldest first, each tagged with `component`.
  [[nodiscard]] std::vector<live_flow> live_flows(std::string_view component) const;

  // The real target addresses of `client`'s flows being relayed now, newest first (a SOCKS BIND
  // listens towards the server of the client's primary connection).
  [[nodiscard]] std::vector<ip_address> targets_of(const ip_address& client) const;

  void remove(std::uint64_t id) {
    const std::lock_guard lock{mutex_};
    sessions_.erase(id);
  }

  // Refuses new sessions and calls every closer once.
  void close_all() {
    std::vector<closer> closers;
    {
      const std::lock_guard lock{mutex_};
      closing_ = true;
      closers.reserve(sessions_.size());
      for (auto& [id, s] : sessions_) {
        closers.push_back(s.close);
      }
    }
    for (auto& c : closers) {
      c();
    }
  }

  // Removes a session when its setup scope ends, unless a relay has taken the session over.
  class entry {
   public:
    entry(session_registry& registry, std::uint64_t id) : registry_{&registry}, id_{id} {}
    entry(const entry&) = delete;
    entry& operator=(const entry&) = delete;
    ~entry() {
      if (registry_ != nullptr) {
        registry_->remove(id_);
      }
    }
    // The relay's completion removes it from now on.
    void hand_over() noexcept { registry_ = nullptr; }

   private:
    session_registry* registry_;
    std::uint64_t id_;
  };

  [[nodiscard]] std::size_t size() const {
    const std::lock_guard lock{mutex_};
    return sessions_.size();
  }

 private:
  struct relayed {
    std::weak_ptr<relay_flow> flow;
    flow_description description;
    std::chrono::steady_clock::time_point since;
  };
  struct session {
    closer close;
    std::optional<relayed> relay;  // once the session relays
  };

  mutable std::mutex mutex_;
  std::unordered_map<std::uint64_t, session> sessions_;
  std::uint64_t last_id_ = 0;
  bool closing_ = false;
};

// From now on stopping the server aborts `flow` (the session's relay), and the flow is listed
// with `description`; if the server stopped while the session was being set up, the flow is
// aborted at once.
void track_relay(session_registry& sessions, std::uint64_t id, const std::shared_ptr<relay_flow>& flow,
                 flow_description description);

// A server's stop after it has closed its listeners: sessions may end by themselves until
// `deadline`, then the rest are closed; completes when they and every coroutine counted in
// `active` have gone (bounded: 5 s after the deadline at most).
boost::asio::awaitable<void> drain(session_registry& sessions, const std::atomic<std::uint64_t>& active,
                                   std::chrono::steady_clock::time_point deadline);

// Counts a running coroutine (a session, an accept or receive loop) in its server's `active`,
// which drain() waits for, and keeps the server's state alive meanwhile.
template <typename State>
class active_guard {
 public:
  explicit active_guard(std::shared_ptr<State> st) : st_{std::move(st)} { ++st_->active; }
  active_guard(const active_guard&) = delete;
  active_guard& operator=(const active_guard&) = delete;
  ~active_guard() { --st_->active; }

 private:
  std::shared_ptr<State> st_;
};

// The bytes and endings of a server's ended flows.
struct flow_totals {
  std::atomic<std::uint64_t> bytes_up{0};
  std::atomic<std::uint64_t> bytes_down{0};
  std::atomic<std::uint64_t> spliced_bytes{0};
  std::atomic<std::uint64_t> buffered_bytes{0};
  std::atomic<std::uint64_t> pipe_fallbacks{0};
  std::atomic<std::uint64_t> idle_timeouts{0};
  std::atomic<std::uint64_t> resets{0};

  void add(const relay_result& r) noexcept;
  // bytes_up, bytes_down, spliced_bytes, buffered_bytes, pipe_fallbacks, idle_timeouts, resets.
  void append_counters(std::vector<counter>& out) const;
};

}  // namespace gate46::gateway
