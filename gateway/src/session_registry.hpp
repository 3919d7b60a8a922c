// The sessions a server has open, so that stopping it can close every one: a session registers
// a closer (close my client socket; later, abort my relay) and removes itself when it ends.
//
// Thread-safety: every member may be called from any thread; closers are called without the
// lock held and must only post work to their session's executor.
#pragma once

#include <cstdint>
#include <functional>
#include <mutex>
#include <unordered_map>
#include <utility>
#include <vector>

namespace gate46::gateway {

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
    sessions_.emplace(id, std::move(c));
    return id;
  }

  // False when the registry closed meanwhile (the caller closes what it holds itself).
  bool replace(std::uint64_t id, closer c) {
    const std::lock_guard lock{mutex_};
    const auto it = sessions_.find(id);
    if (closing_ || it == sessions_.end()) {
      return false;
    }
    it->second = std::move(c);
    return true;
  }

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
      for (auto& [id, c] : sessions_) {
        closers.push_back(c);
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
  mutable std::mutex mutex_;
  std::unordered_map<std::uint64_t, closer> sessions_;
  std::uint64_t last_id_ = 0;
  bool closing_ = false;
};

}  // namespace gate46::gateway
