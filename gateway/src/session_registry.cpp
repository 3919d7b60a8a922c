#include "session_registry.hpp"

#include <algorithm>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace gate46::gateway {
namespace asio = boost::asio;

bool session_registry::relaying(std::uint64_t id, const std::shared_ptr<relay_flow>& flow,
                                flow_description description) {
  const std::lock_guard lock{mutex_};
  const auto it = sessions_.find(id);
  if (closing_ || it == sessions_.end()) {
    return false;
  }
  std::weak_ptr<relay_flow> weak{flow};
  it->second.close = [weak] {
    if (const auto f = weak.lock()) {
      f->abort();
    }
  };
  it->second.relay = relayed{std::move(weak), std::move(description), std::chrono::steady_clock::now()};
  return true;
}

std::vector<live_flow> session_registry::live_flows(std::string_view component) const {
  std::vector<std::pair<std::chrono::steady_clock::time_point, live_flow>> found;
  const auto now = std::chrono::steady_clock::now();
  {
    const std::lock_guard lock{mutex_};
    for (const auto& [id, s] : sessions_) {
      if (!s.relay) {
        continue;  // still being set up
      }
      const auto flow = s.relay->flow.lock();
      if (!flow) {
        continue;  // ended; its completion is removing it
      }
      const auto progress = flow->progress();
      const auto& d = s.relay->description;
      found.emplace_back(
          s.relay->since,
          live_flow{std::string{component}, d.client.to_string(), d.destination, d.name,
                    d.target.port == 0 ? std::string{} : d.target.to_string(), progress.client_to_target,
                    progress.target_to_client,
                    static_cast<std::uint64_t>(
                        std::chrono::duration_cast<std::chrono::milliseconds>(now - s.relay->since).count())});
    }
  }
  std::sort(found.begin(), found.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  std::vector<live_flow> flows;
  flows.reserve(found.size());
  for (auto& [since, f] : found) {
    flows.push_back(std::move(f));
  }
  return flows;
}

std::vector<ip_address> session_registry::targets_of(const ip_address& client) const {
  std::vector<std::pair<std::chrono::steady_clock::time_point, ip_address>> found;
  {
    const std::lock_guard lock{mutex_};
    for (const auto& [id, s] : sessions_) {
      if (s.relay && s.relay->description.client.address == client && s.relay->description.target.port != 0 &&
          !s.relay->flow.expired()) {
        found.emplace_back(s.relay->since, s.relay->description.target.address);
      }
    }
  }
  std::sort(found.begin(), found.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
  std::vector<ip_address> out;
  out.reserve(found.size());
  for (auto& [since, address] : found) {
    out.push_back(address);
  }
  return out;
}

void track_relay(session_registry& sessions, std::uint64_t id, const std::shared_ptr<relay_flow>& flow,
                 flow_description description) {
  if (!sessions.relaying(id, flow, std::move(description))) {
    flow->abort();
  }
}

asio::awaitable<void> drain(session_registry& sessions, const std::atomic<std::uint64_t>& active,
                            std::chrono::steady_clock::time_point deadline) {
  constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);
  asio::steady_timer wait{co_await asio::this_coro::executor};
  // Flows in progress may finish until the drain deadline...
  while (sessions.size() > 0 && std::chrono::steady_clock::now() < deadline) {
    wait.expires_after(std::chrono::milliseconds{20});
    co_await wait.async_wait(use_tuple);
  }
  // ...then whatever is left is closed.
  sessions.close_all();
  for (int i = 0; i < 500 && (sessions.size() > 0 || active.load() > 0); ++i) {
    wait.expires_after(std::chrono::milliseconds{10});
    co_await wait.async_wait(use_tuple);
  }
}

void flow_totals::add(const relay_result& r) noexcept {
  bytes_up.fetch_add(r.client_to_target, std::memory_order_relaxed);
  bytes_down.fetch_add(r.target_to_client, std::memory_order_relaxed);
  spliced_bytes.fetch_add(r.spliced_bytes, std::memory_order_relaxed);
  buffered_bytes.fetch_add(r.buffered_bytes, std::memory_order_relaxed);
  pipe_fallbacks.fetch_add(r.pipe_fallbacks, std::memory_order_relaxed);
  if (r.idle_timeout) {
    idle_timeouts.fetch_add(1, std::memory_order_relaxed);
  }
  if (r.reset) {
    resets.fetch_add(1, std::memory_order_relaxed);
  }
}

void flow_totals::append_counters(std::vector<counter>& out) const {
  out.push_back({"bytes_up", bytes_up.load()});
  out.push_back({"bytes_down", bytes_down.load()});
  out.push_back({"spliced_bytes", spliced_bytes.load()});
  out.push_back({"buffered_bytes", buffered_bytes.load()});
  out.push_back({"pipe_fallbacks", pipe_fallbacks.load()});
  out.push_back({"idle_timeouts", idle_timeouts.load()});
  out.push_back({"resets", resets.load()});
}

}  // namespace gate46::gateway
