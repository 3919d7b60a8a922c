// The DNS servers the LAN talks to, answering with a responder (responder.hpp): UDP and TCP (RFC 7766: several queries
// in flight per connection, answers in any order) on a set of endpoints, one socket per worker thread with SO_REUSEPORT
// so the kernel spreads clients over the workers. Clients outside the allowed networks get REFUSED and are counted:
// never an open resolver.
//
// Thread-safety: listen(), close(), reconfigure() and stop() belong to the daemon's control
// thread; counters() may be called from any thread.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <vector>

#include <boost/asio/awaitable.hpp>

#include "gate46/common/address.hpp"
#include "gate46/common/component.hpp"
#include "gate46/common/worker_pool.hpp"
#include "gate46/dns/responder.hpp"

namespace gate46::dns {

struct server_settings {
  std::vector<cidr> allowed;  // lan.networks
  std::chrono::seconds tcp_idle_timeout{10};
  unsigned tcp_max_per_client = 16;
  unsigned tcp_max = 1024;
};

class dns_server {
 public:
  dns_server(worker_pool& workers, responder& answers, server_settings settings);
  dns_server(const dns_server&) = delete;
  dns_server& operator=(const dns_server&) = delete;
  ~dns_server();

  // Serves UDP and TCP on `at`. Throws boost::system::system_error if it cannot bind.
  void listen(const endpoint& at);
  // Stops serving on `at` (an address that went away); no-op if not listening there.
  void close(const endpoint& at);
  [[nodiscard]] std::vector<endpoint> endpoints() const;

  // The live keys: allowed networks are not live (lan.networks needs a restart), the TCP
  // limits and idle timeout are.
  void reconfigure(const server_settings& settings);
  // Closes every listener and connection; completes when every session has ended.
  boost::asio::awaitable<void> stop();

  [[nodiscard]] std::vector<counter> counters() const;

  struct state;  // shared with the sessions, which may outlive a closed listener

 private:
  struct listener;
  worker_pool& workers_;
  std::shared_ptr<state> state_;
  std::map<endpoint, std::vector<std::shared_ptr<listener>>> listeners_;
};

}  // namespace gate46::dns
