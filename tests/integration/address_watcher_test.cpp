// gate46::address_watcher against the real kernel, inside a test network namespace: the initial
// dump, address events for both families, other interfaces ignored, interfaces created, renamed
// and deleted later, IPv6 duplicate address detection, an rtnetlink overrun repaired, and stop.
//
// The watcher's netlink socket is opened while the test thread has entered the namespace
// (setns), so it belongs to that namespace for good; the thread returns to its own at once, and
// the watcher then runs on an io_context thread like in gate46d. Every change is made with `ip`
// in the namespace. Negative assertions ("not reported") are made after a later change on the
// watched interface has been seen: the kernel delivers events in order, so by then the earlier
// one has been processed.
#include <fcntl.h>
#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <future>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <system_error>
#include <thread>
#include <variant>
#include <vector>

#include <gtest/gtest.h>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/use_future.hpp>

#include "gate46/common/address_watcher.hpp"
#include "gate46/testing/netns.hpp"
#include "gate46/testing/privileges.hpp"
#include "gate46/testing/wait.hpp"

namespace {

namespace asio = boost::asio;
using namespace gate46::testing;
using gate46::address_change;
using gate46::address_watcher;
using gate46::interface_address;
using namespace boost::asio::experimental::awaitable_operators;

// Events take microseconds; these bound what should never take long.
constexpr auto ready_timeout = 5s;
constexpr auto event_timeout = 5s;
// DAD on a veth here takes about one retransmission interval (1 s).
constexpr auto dad_timeout = 5s;

// The calling thread inside the namespace /run/netns/<name> for the object's lifetime.
class inside_netns {
 public:
  explicit inside_netns(const std::string& name) {
    own_ = ::open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
    const int target = ::open(("/run/netns/" + name).c_str(), O_RDONLY | O_CLOEXEC);
    if (own_ < 0 || target < 0 || ::setns(target, CLONE_NEWNET) != 0) {
      const int error = errno;
      if (target >= 0) {
        ::close(target);
      }
      if (own_ >= 0) {
        ::close(own_);
      }
      throw std::system_error{error, std::generic_category(), "entering network namespace " + name};
    }
    ::close(target);
  }
  inside_netns(const inside_netns&) = delete;
  inside_netns& operator=(const inside_netns&) = delete;
  ~inside_netns() {
    if (::setns(own_, CLONE_NEWNET) != 0) {
      std::abort();  // the rest of the test binary would run in the wrong namespace
    }
    ::close(own_);
  }

 private:
  int own_ = -1;
};

// "lan0 192.0.2.1/24" style keys, so failures print readably.
std::string key(const interface_address& a) {
  return a.interface + ' ' + a.address.to_string() + '/' + std::to_string(a.prefix_length);
}

std::set<std::string> keys(const std::vector<interface_address>& list, bool with_link_local = false) {
  std::set<std::string> out;
  for (const auto& a : list) {
    if (with_link_local || !a.is_link_local()) {
      out.insert(key(a));
    }
  }
  return out;
}

// What a subscriber has been told, kept by the callback (which runs on the watcher's strand).
class recorder {
 public:
  void operator()(const address_change& change) {
    const std::lock_guard lock{mutex_};
    changes_.push_back(change);
  }
  [[nodiscard]] std::vector<address_change> changes() const {
    const std::lock_guard lock{mutex_};
    return changes_;
  }
  [[nodiscard]] bool saw(address_change::kind what, const std::string& k) const {
    const auto all = changes();
    return std::any_of(all.begin(), all.end(),
                       [&](const address_change& c) { return c.what == what && key(c.address) == k; });
  }
  // The state the changes add up to; also checks that each one made sense (no double add, no
  // removal of something absent).
  [[nodiscard]] std::set<std::string> state(std::vector<std::string>* errors = nullptr) const {
    std::set<std::string> out;
    for (const auto& c : changes()) {
      const auto k = key(c.address) + (c.address.is_link_local() ? " ll" : "");
      const bool consistent = c.what == address_change::kind::added ? out.insert(k).second : out.erase(k) == 1;
      if (!consistent && errors != nullptr) {
        errors->push_back((c.what == address_change::kind::added ? "added twice: " : "removed while absent: ") + k);
      }
    }
    return out;
  }

 private:
  mutable std::mutex mutex_;
  std::vector<address_change> changes_;
};

std::set<std::string> state_keys(const std::vector<interface_address>& list) {
  std::set<std::string> out;
  for (const auto& a : list) {
    out.insert(key(a) + (a.is_link_local() ? " ll" : ""));
  }
  return out;
}

// wait_ready() composed with a timer, as a consumer would: true if ready first.
asio::awaitable<bool> ready_within(address_watcher& watcher, std::chrono::milliseconds timeout) {
  asio::steady_timer timer{co_await asio::this_coro::executor, timeout};
  const auto result = co_await (watcher.wait_ready() || timer.async_wait(asio::as_tuple(asio::use_awaitable)));
  co_return result.index() == 0 && !std::get<0>(result);
}

// A watcher opened inside `ns`, running on its own io_context thread, with one recorder
// subscribed from the start.
class running_watcher {
 public:
  running_watcher(const netns& ns, std::vector<std::string> interfaces) {
    {
      const inside_netns inside{ns.name()};
      watcher_.emplace(io_.get_executor(), std::move(interfaces));
    }
    subscription_ = watcher_->subscribe([this](const address_change& c) { recorder_(c); });
    thread_ = std::thread{[this] { io_.run(); }};
  }
  running_watcher(const running_watcher&) = delete;
  running_watcher& operator=(const running_watcher&) = delete;
  ~running_watcher() {
    watcher_->stop();
    work_.reset();
    io_.stop();
    thread_.join();
    subscription_.reset();
    watcher_.reset();
  }

  address_watcher& operator*() { return *watcher_; }
  address_watcher* operator->() { return &*watcher_; }
  asio::io_context& io() { return io_; }
  const recorder& changes() const { return recorder_; }

  bool ready_within(std::chrono::milliseconds timeout) {
    auto done = asio::co_spawn(io_, ::ready_within(*watcher_, timeout), asio::use_future);
    return done.wait_for(timeout + 1s) == std::future_status::ready && done.get();
  }

  bool snapshot_has(const std::string& k) const {
    const auto s = watcher_->snapshot();
    return std::any_of(s.begin(), s.end(), [&](const interface_address& a) { return key(a) == k; });
  }

 private:
  asio::io_context io_{1};
  asio::executor_work_guard<asio::io_context::executor_type> work_{io_.get_executor()};
  std::optional<address_watcher> watcher_;
  recorder recorder_;
  address_watcher::subscription subscription_;
  std::thread thread_;
};

class address_watcher_test : public ::testing::Test {
 protected:
  void SetUp() override {
    GATE46_SKIP_UNLESS_ROOT();
    gw_.emplace("aw");
    peer_.emplace("awpeer");
    connect_veth(*gw_, {"lan0", {"192.0.2.1/24", "2001:db8:1::1/64"}},  //
                 *peer_, {"eth0", {"192.0.2.2/24", "2001:db8:1::2/64"}});
    connect_veth(*gw_, {"other0", {"198.51.100.1/24", "2001:db8:2::1/64"}},  //
                 *peer_, {"eth1", {"198.51.100.2/24", "2001:db8:2::2/64"}});
  }

  running_watcher& start(std::vector<std::string> interfaces = {"lan0"}) {
    auto& w = watcher_.emplace(*gw_, std::move(interfaces));
    EXPECT_TRUE(w.ready_within(ready_timeout)) << "no initial dump within " << ready_timeout.count() << " s";
    return w;
  }

  void ip(const std::vector<std::string>& args) const {
    std::vector<std::string> argv{"ip"};
    argv.insert(argv.end(), args.begin(), args.end());
    gw_->run_checked(argv);
  }

  // Adds `address` to lan0 and waits until the watcher reports it: every event queued before it
  // has then been handled.
  void barrier(const std::string& address) {
    ip({"address", "add", address, "dev", "lan0"});
    ASSERT_TRUE(wait_until([&] { return watcher_->changes().saw(address_change::kind::added, "lan0 " + address); },
                           event_timeout))
        << "barrier " << address << " not seen";
  }

  std::optional<netns> gw_;
  std::optional<netns> peer_;
  std::optional<running_watcher> watcher_;  // after the namespaces: gone before them
};

TEST_F(address_watcher_test, initial_dump_lists_the_interface_addresses_of_both_families) {
  auto& w = start();
  EXPECT_TRUE(w->ready());
  const auto snapshot = w->snapshot();
  EXPECT_EQ(keys(snapshot), (std::set<std::string>{"lan0 192.0.2.1/24", "lan0 2001:db8:1::1/64"}));

  // The link-local address comes with the link (perhaps just after the dump): marked, link scope,
  // with the interface index to bind it with.
  ASSERT_TRUE(wait_until(
      [&] {
        const auto s = w->snapshot();
        return std::any_of(s.begin(), s.end(), [](const interface_address& a) { return a.is_link_local(); });
      },
      event_timeout));
  const auto index = std::stoul(gw_->run_checked({"cat", "/sys/class/net/lan0/ifindex"}));
  for (const auto& a : w->snapshot()) {
    EXPECT_EQ(a.interface, "lan0");
    EXPECT_EQ(a.interface_index, index) << key(a);
    if (a.is_link_local()) {
      EXPECT_TRUE(a.address.is_v6()) << key(a);
      EXPECT_EQ(a.scope, gate46::address_scope::link) << key(a);
      EXPECT_EQ(a.prefix_length, 64U);
    } else {
      EXPECT_EQ(a.scope, gate46::address_scope::global) << key(a);
    }
  }
  // The subscriber, there from the start, was told exactly that state.
  std::vector<std::string> errors;
  EXPECT_EQ(w.changes().state(&errors), state_keys(w->snapshot()));
  EXPECT_TRUE(errors.empty()) << errors.front();
  EXPECT_EQ(w->stats().dumps, 1U);
  EXPECT_EQ(w->stats().overruns, 0U);
}

TEST_F(address_watcher_test, added_and_removed_addresses_arrive_as_events) {
  auto& w = start();
  const auto started = std::chrono::steady_clock::now();
  ip({"address", "add", "192.0.2.10/24", "dev", "lan0"});
  ip({"address", "add", "2001:db8:1::10/64", "dev", "lan0", "nodad"});
  ASSERT_TRUE(wait_until(
      [&] {
        return w.changes().saw(address_change::kind::added, "lan0 192.0.2.10/24") &&
               w.changes().saw(address_change::kind::added, "lan0 2001:db8:1::10/64");
      },
      event_timeout));
  EXPECT_LT(std::chrono::steady_clock::now() - started, 2s) << "events should take milliseconds";
  EXPECT_TRUE(w.snapshot_has("lan0 192.0.2.10/24"));
  EXPECT_TRUE(w.snapshot_has("lan0 2001:db8:1::10/64"));

  // A second subscriber first gets the current state, then follows; one reset hears nothing
  // after (its replay may have run before the reset: that is allowed).
  recorder late;
  auto late_subscription = w->subscribe([&late](const address_change& c) { late(c); });
  ASSERT_TRUE(wait_until([&] { return late.state() == state_keys(w->snapshot()); }, event_timeout));
  EXPECT_TRUE(late.saw(address_change::kind::added, "lan0 192.0.2.10/24"));
  recorder gone;
  auto gone_subscription = w->subscribe([&gone](const address_change& c) { gone(c); });
  gone_subscription.reset();

  ip({"address", "del", "192.0.2.10/24", "dev", "lan0"});
  ip({"address", "del", "2001:db8:1::10/64", "dev", "lan0"});
  ASSERT_TRUE(wait_until(
      [&] {
        return w.changes().saw(address_change::kind::removed, "lan0 192.0.2.10/24") &&
               w.changes().saw(address_change::kind::removed, "lan0 2001:db8:1::10/64");
      },
      event_timeout));
  EXPECT_FALSE(w.snapshot_has("lan0 192.0.2.10/24"));
  EXPECT_FALSE(w.snapshot_has("lan0 2001:db8:1::10/64"));
  EXPECT_TRUE(
      wait_until([&] { return late.saw(address_change::kind::removed, "lan0 2001:db8:1::10/64"); }, event_timeout));
  late_subscription.reset();  // before `late` goes
  EXPECT_FALSE(gone.saw(address_change::kind::removed, "lan0 192.0.2.10/24"));
  EXPECT_FALSE(gone.saw(address_change::kind::removed, "lan0 2001:db8:1::10/64"));

  std::vector<std::string> errors;
  EXPECT_EQ(w.changes().state(&errors), state_keys(w->snapshot()));
  EXPECT_TRUE(errors.empty()) << errors.front();
}

TEST_F(address_watcher_test, other_interfaces_and_loopback_are_ignored) {
  auto& w = start();
  ip({"address", "add", "198.51.100.10/24", "dev", "other0"});
  ip({"address", "add", "2001:db8:2::10/64", "dev", "other0", "nodad"});
  ip({"address", "add", "203.0.113.1/32", "dev", "lo"});
  barrier("192.0.2.11/24");
  for (const auto& c : w.changes().changes()) {
    EXPECT_EQ(c.address.interface, "lan0") << key(c.address);
  }
  for (const auto& a : w->snapshot()) {
    EXPECT_EQ(a.interface, "lan0") << key(a);
  }
}

TEST_F(address_watcher_test, interface_created_later_is_followed_until_deleted) {
  auto& w = start({"lan0", "late0"});
  const auto before = w->snapshot();
  EXPECT_FALSE(
      std::any_of(before.begin(), before.end(), [](const interface_address& a) { return a.interface == "late0"; }));
  connect_veth(*gw_, {"late0", {"203.0.113.1/24", "2001:db8:3::1/64"}},  //
               *peer_, {"late1", {"203.0.113.2/24", "2001:db8:3::2/64"}});
  ASSERT_TRUE(
      wait_until([&] { return w.snapshot_has("late0 203.0.113.1/24") && w.snapshot_has("late0 2001:db8:3::1/64"); },
                 event_timeout));

  ip({"link", "del", "late0"});
  ASSERT_TRUE(wait_until(
      [&] {
        const auto s = w->snapshot();
        return std::none_of(s.begin(), s.end(), [](const interface_address& a) { return a.interface == "late0"; });
      },
      event_timeout));
  EXPECT_TRUE(w.changes().saw(address_change::kind::removed, "late0 203.0.113.1/24"));
  EXPECT_TRUE(w.changes().saw(address_change::kind::removed, "late0 2001:db8:3::1/64"));
  EXPECT_TRUE(w.snapshot_has("lan0 192.0.2.1/24"));
  std::vector<std::string> errors;
  EXPECT_EQ(w.changes().state(&errors), state_keys(w->snapshot()));
  EXPECT_TRUE(errors.empty()) << errors.front();
}

TEST_F(address_watcher_test, renamed_interface_is_followed_by_its_name) {
  auto& w = start({"lan0", "ren0"});
  // A link that is down keeps its addresses (IPv4, and IPv6 added with nodad) and can be renamed.
  ip({"link", "add", "tmp0", "type", "veth", "peer", "name", "tmp1"});
  ip({"address", "add", "203.0.113.60/24", "dev", "tmp0"});
  ip({"address", "add", "2001:db8:4::60/64", "dev", "tmp0", "nodad"});
  barrier("192.0.2.12/24");
  EXPECT_FALSE(w.changes().saw(address_change::kind::added, "tmp0 203.0.113.60/24"));

  ip({"link", "set", "tmp0", "name", "ren0"});
  ASSERT_TRUE(
      wait_until([&] { return w.snapshot_has("ren0 203.0.113.60/24") && w.snapshot_has("ren0 2001:db8:4::60/64"); },
                 event_timeout));

  ip({"link", "set", "ren0", "name", "tmp2"});
  ASSERT_TRUE(wait_until(
      [&] {
        return w.changes().saw(address_change::kind::removed, "ren0 203.0.113.60/24") &&
               w.changes().saw(address_change::kind::removed, "ren0 2001:db8:4::60/64");
      },
      event_timeout));
  EXPECT_FALSE(w.snapshot_has("ren0 203.0.113.60/24"));
  EXPECT_FALSE(w.changes().saw(address_change::kind::added, "tmp2 203.0.113.60/24"));
}

TEST_F(address_watcher_test, tentative_ipv6_address_is_reported_once_dad_completes) {
  // The harness turns DAD off; turn it back on for lan0 alone (the per-interface value counts as
  // soon as either it or "all" is on), without the random start delay.
  gw_->run_checked(
      {"sysctl", "-q", "-w", "net.ipv6.conf.lan0.accept_dad=1", "net.ipv6.conf.lan0.router_solicitation_delay=0"});
  // A veth end set up drops what it sends until the kernel's link watch activates it (about a
  // second later, when operstate turns "up"): the one DAD probe would be lost, and the duplicate
  // below would pass DAD.
  const auto operstate_up = [](const netns& ns, const std::string& ifname) {
    return ns.run_checked({"cat", "/sys/class/net/" + ifname + "/operstate"}) == "up\n";
  };
  ASSERT_TRUE(wait_until([&] { return operstate_up(*gw_, "lan0") && operstate_up(*peer_, "eth0"); }, 5s, 50ms));
  auto& w = start();
  // The peer already owns 2001:db8:1::2 (it answers our DAD probe): that one fails DAD.
  ip({"address", "add", "2001:db8:1::2/64", "dev", "lan0"});
  ip({"address", "add", "2001:db8:1::20/64", "dev", "lan0"});
  barrier("192.0.2.20/24");
  EXPECT_FALSE(w.snapshot_has("lan0 2001:db8:1::20/64"));
  EXPECT_FALSE(w.snapshot_has("lan0 2001:db8:1::2/64"));
  // Checked after the snapshot: if it is still tentative now, it was then.
  const auto tentative = gw_->run_checked({"ip", "-6", "-o", "address", "show", "dev", "lan0", "tentative"});
  ASSERT_NE(tentative.find("2001:db8:1::20/64"), std::string::npos)
      << "DAD ended before the check; the test cannot tell anything:\n"
      << tentative;

  ASSERT_TRUE(wait_until([&] { return w.snapshot_has("lan0 2001:db8:1::20/64"); }, dad_timeout))
      << gw_->run_checked({"ip", "-6", "address", "show", "dev", "lan0"});
  EXPECT_TRUE(w.changes().saw(address_change::kind::added, "lan0 2001:db8:1::20/64"));
  ASSERT_TRUE(wait_until(
      [&] {
        return gw_->run_checked({"ip", "-6", "-o", "address", "show", "dev", "lan0", "dadfailed"})
                   .find("2001:db8:1::2/64") != std::string::npos;
      },
      dad_timeout))
      << gw_->run_checked({"ip", "-6", "address", "show", "dev", "lan0"});
  EXPECT_FALSE(w.snapshot_has("lan0 2001:db8:1::2/64"));
  EXPECT_FALSE(w.changes().saw(address_change::kind::added, "lan0 2001:db8:1::2/64"));
}

TEST_F(address_watcher_test, overrun_is_repaired_by_dumping_again) {
  auto& w = start();
  ip({"link", "add", "storm0", "type", "veth", "peer", "name", "storm1"});
  ip({"address", "add", "192.0.2.30/24", "dev", "lan0"});
  barrier("192.0.2.31/24");

  // Hold the watcher's thread while the kernel queues far more events than its socket buffer
  // takes (each link event is a few KiB), then change lan0: those events are dropped.
  std::promise<void> release;
  auto released = release.get_future().share();
  asio::post(w.io(), [released] { released.wait_for(30s); });
  auto batch = temp_dir{"gate46-aw"};
  std::string commands;
  for (int i = 0; i < 3000; ++i) {
    commands += "link set storm1 mtu " + std::to_string(1400 + i % 2) + "\n";
  }
  commands += "address add 192.0.2.40/24 dev lan0\n";
  commands += "address add 2001:db8:1::40/64 dev lan0 nodad\n";
  commands += "address del 192.0.2.30/24 dev lan0\n";
  const auto path = batch.write_file("storm", commands);
  try {
    ip({"-batch", path.string()});
  } catch (...) {
    release.set_value();
    throw;
  }
  release.set_value();

  ASSERT_TRUE(wait_until(
      [&] {
        return w.snapshot_has("lan0 192.0.2.40/24") && w.snapshot_has("lan0 2001:db8:1::40/64") &&
               !w.snapshot_has("lan0 192.0.2.30/24");
      },
      event_timeout));
  const auto stats = w->stats();
  EXPECT_GE(stats.overruns, 1U) << "the storm did not overrun the socket: the test proves nothing";
  EXPECT_GE(stats.dumps, 2U);
  // The subscriber's stream still adds up to the state (its callbacks may run just after the
  // snapshot is updated: wait for them, bounded).
  std::vector<std::string> errors;
  (void)wait_until([&] { return w.changes().state() == state_keys(w->snapshot()); }, event_timeout);
  EXPECT_EQ(w.changes().state(&errors), state_keys(w->snapshot()));
  EXPECT_TRUE(errors.empty()) << errors.front();
  EXPECT_TRUE(w.changes().saw(address_change::kind::removed, "lan0 192.0.2.30/24"));
  // And it keeps following.
  barrier("192.0.2.41/24");
}

TEST_F(address_watcher_test, stop_before_ready_aborts_waiting_and_destruction_is_safe) {
  asio::io_context io{1};
  std::optional<address_watcher> watcher;
  {
    const inside_netns inside{gw_->name()};
    watcher.emplace(io.get_executor(), std::vector<std::string>{"lan0"});
  }
  recorder told;
  auto subscription = watcher->subscribe([&told](const address_change& c) { told(c); });
  auto waited = asio::co_spawn(io, watcher->wait_ready(), asio::use_future);
  watcher->stop();
  io.run_for(2s);
  ASSERT_EQ(waited.wait_for(0s), std::future_status::ready);
  EXPECT_EQ(waited.get(), asio::error::operation_aborted);
  EXPECT_FALSE(watcher->ready());
  EXPECT_TRUE(watcher->snapshot().empty());
  EXPECT_TRUE(told.changes().empty());

  // A watcher destroyed while running, with a subscription outliving it.
  io.restart();
  {
    const inside_netns inside{gw_->name()};
    watcher.emplace(io.get_executor(), std::vector<std::string>{"lan0"});
  }
  auto second = watcher->subscribe([&told](const address_change& c) { told(c); });
  auto ready = asio::co_spawn(io, ready_within(*watcher, ready_timeout), asio::use_future);
  for (int i = 0; i < 50 && ready.wait_for(0s) != std::future_status::ready; ++i) {
    io.run_for(100ms);  // the read loop keeps the context busy: run in slices
  }
  ASSERT_EQ(ready.wait_for(0s), std::future_status::ready);
  EXPECT_TRUE(ready.get());
  watcher.reset();
  io.run_for(100ms);
  second.reset();
  subscription.reset();
  EXPECT_FALSE(told.changes().empty());
}

}  // namespace
