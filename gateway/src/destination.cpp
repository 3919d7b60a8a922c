#include "destination.hpp"

#include <ifaddrs.h>
#include <netinet/in.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <memory>
#include <mutex>

namespace gate46::gateway {

namespace {

std::vector<ip_address> read_local_addresses() {
  std::vector<ip_address> out;
  ifaddrs* list = nullptr;
  if (getifaddrs(&list) != 0) {
    return out;
  }
  for (const ifaddrs* i = list; i != nullptr; i = i->ifa_next) {
    if (i->ifa_addr == nullptr) {
      continue;
    }
    if (i->ifa_addr->sa_family == AF_INET) {
      sockaddr_in sin{};
      std::memcpy(&sin, i->ifa_addr, sizeof sin);
      out.push_back(ip_address::from_v4(ntohl(sin.sin_addr.s_addr)));
    } else if (i->ifa_addr->sa_family == AF_INET6) {
      sockaddr_in6 sin6{};
      std::memcpy(&sin6, i->ifa_addr, sizeof sin6);
      ip_address::bytes_type b{};
      std::memcpy(b.data(), &sin6.sin6_addr, 16);
      out.push_back(ip_address::from_v6(b));
    }
  }
  freeifaddrs(list);
  return out;
}

class own_addresses {
 public:
  std::shared_ptr<const std::vector<ip_address>> get() {
    const auto now = std::chrono::steady_clock::now();
    const std::lock_guard lock{mutex_};
    if (!current_ || now - read_at_ >= refresh_) {
      current_ = std::make_shared<const std::vector<ip_address>>(read_local_addresses());
      read_at_ = now;
    }
    return current_;
  }

 private:
  static constexpr std::chrono::seconds refresh_{1};
  std::mutex mutex_;
  std::shared_ptr<const std::vector<ip_address>> current_;
  std::chrono::steady_clock::time_point read_at_;
};

own_addresses& own() {
  static own_addresses instance;
  return instance;
}

}  // namespace

bool is_own_address(const ip_address& address) {
  const auto list = own().get();
  return std::find(list->begin(), list->end(), address) != list->end();
}

boost::asio::awaitable<name_destination> resolve_destination(dns::resolver& resolver,
                                                             const destination_policy& destinations,
                                                             const dns_name& name) {
  name_destination out;
  auto v6 = co_await resolver.resolve(name, ip_family::v6);
  auto v4 = co_await resolver.resolve(name, ip_family::v4);
  const auto list = own().get();
  for (const auto* found : {v6 ? &*v6 : nullptr, v4 ? &*v4 : nullptr}) {
    if (found == nullptr) {
      continue;
    }
    for (const auto& a : *found) {
      out.had_addresses = true;
      // Every resolved address is checked: a name with A 127.0.0.1, or one resolving into our
      // own pools (a loop), is not a way in.
      if (destinations.check(a) != destination_verdict::allowed ||
          std::find(list->begin(), list->end(), a) != list->end()) {
        continue;
      }
      (a.is_v4() ? out.v4 : out.v6).push_back(a);
    }
  }
  co_return out;
}

}  // namespace gate46::gateway
