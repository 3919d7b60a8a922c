// The daemon's lifecycle against a recording component: start, reconfigure with a new snapshot,
// a rejected reload, stop with a drain deadline, counters, and a failing start. Signals are
// covered by the integration test that runs the real gate46d; here the same entry points
// (request_reload, request_stop) are driven directly.
#include "gate46/gateway/daemon.hpp"

#include "gate46/mapping/lmdb_store.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <future>
#include <mutex>
#include <thread>

#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace gate46::gateway {
namespace {

using namespace std::chrono_literals;

// What the component saw, readable from the test thread.
struct journal {
  std::mutex mutex;
  std::vector<std::string> events;
  std::chrono::steady_clock::time_point stop_deadline;
  std::promise<void> started;
  std::vector<std::shared_ptr<const config>> configs;

  void add(std::string event) {
    const std::lock_guard lock{mutex};
    events.push_back(std::move(event));
  }
  std::vector<std::string> snapshot() {
    const std::lock_guard lock{mutex};
    return events;
  }
};

class recording_component final : public component {
 public:
  recording_component(std::string name, const component_context& ctx, daemon_services& services, journal& j,
                      bool fail_start)
      : name_{std::move(name)}, workers_{ctx.workers}, journal_{j}, fail_start_{fail_start} {
    journal_.add(name_ + ":constructed threads=" + std::to_string(ctx.initial_config.daemon.threads) +
                 " store=" + (services.store != nullptr ? "open" : "none"));
  }
  [[nodiscard]] std::string_view name() const noexcept override { return name_; }
  void start() override {
    if (fail_start_) {
      throw std::runtime_error{"cannot bind"};
    }
    // Work on a worker context, as a real listener would.
    boost::asio::post(workers_.next(), [this] {
      work_done_ = 1;
      journal_.add(name_ + ":start");
      journal_.started.set_value();
    });
  }
  void reconfigure(const config& cfg) override {
    journal_.add(name_ + ":reconfigure fake_ttl=" + std::to_string(cfg.dns.fake_ttl.count()));
  }
  boost::asio::awaitable<void> stop(std::chrono::steady_clock::time_point deadline) override {
    {
      const std::lock_guard lock{journal_.mutex};
      journal_.stop_deadline = deadline;
    }
    // A short drain on the control executor.
    boost::asio::steady_timer timer{co_await boost::asio::this_coro::executor, 10ms};
    co_await timer.async_wait(boost::asio::use_awaitable);
    journal_.add(name_ + ":stop");
  }
  [[nodiscard]] std::vector<counter> counters() const override { return {{"work_done", work_done_.load()}}; }

 private:
  std::string name_;
  worker_pool& workers_;
  journal& journal_;
  bool fail_start_;
  std::atomic<std::uint64_t> work_done_{0};
};

// Polls for up to five seconds.
template <typename Predicate>
bool eventually(Predicate predicate) {
  for (int i = 0; i < 500; ++i) {
    if (predicate()) {
      return true;
    }
    std::this_thread::sleep_for(10ms);
  }
  return false;
}

std::uint64_t counter_value(const daemon& d, std::string_view name) {
  for (const auto& c : d.counters()) {
    if (c.name == name) {
      return c.value;
    }
  }
  ADD_FAILURE() << "no counter " << name;
  return 0;
}

class daemon_test : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() / ("gate46-daemon-test-" + std::to_string(::getpid()) + "-" +
                                                     ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::create_directories(dir_);
    path_ = dir_ / "gate46.toml";
    mapping::write_pool_key(dir_ / "pool.key", false);
    write_config(60);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  void write_config(int fake_ttl, std::string_view extra = "") {
    std::ofstream out{path_};
    out << "[daemon]\nthreads = 2\n[lan]\ninterfaces = [\"lan0\"]\nnetworks = [\"192.0.2.0/24\"]\n"
        << "[dns]\nupstreams = [\"198.51.100.53\"]\nfake_ttl = " << fake_ttl << "\n"
        << "[gateway]\ndrain_timeout = 7\n"
        << "[store]\npath = \"" << (dir_ / "mappings.mdb").string() << "\"\n"
        << "[pools]\nkey_file = \"" << (dir_ / "pool.key").string() << "\"\n"
        << "[control]\nsocket = \"" << (dir_ / "control.sock").string() << "\"\n"
        << extra;
  }

  // Run in this process: no privilege drop.
  [[nodiscard]] daemon_options options(std::optional<std::vector<std::string>> components) const {
    daemon_options o;
    o.config_path = path_;
    o.components = std::move(components);
    return o;
  }

  component_registry registry_with(const std::string& name, bool fail_start = false) {
    component_registry registry;
    registry.add(name, [this, name, fail_start](const component_context& ctx, daemon_services& services) {
      return std::make_unique<recording_component>(name, ctx, services, journal_, fail_start);
    });
    return registry;
  }

  std::filesystem::path dir_;
  std::filesystem::path path_;
  journal journal_;
};

TEST_F(daemon_test, runs_reloads_and_stops_its_components) {
  const auto registry = registry_with("dns");
  daemon d{options(std::vector<std::string>{"dns"}), registry};
  auto status = std::async(std::launch::async, [&] { return d.run(); });
  ASSERT_EQ(journal_.started.get_future().wait_for(10s), std::future_status::ready);

  write_config(5);
  d.request_reload();
  ASSERT_TRUE(eventually([&] { return d.current_config()->dns.fake_ttl == 5s; }));

  // A broken file keeps the running snapshot and reaches no component.
  write_config(6, "[dns.bogus]\n");
  d.request_reload();
  ASSERT_TRUE(eventually([&] { return counter_value(d, "reloads_rejected") == 1; }));
  EXPECT_EQ(d.current_config()->dns.fake_ttl, 5s);

  write_config(7);
  d.request_reload();
  ASSERT_TRUE(eventually([&] { return d.current_config()->dns.fake_ttl == 7s; }));
  EXPECT_EQ(counter_value(d, "reloads_applied"), 2U);

  const auto before_stop = std::chrono::steady_clock::now();
  d.request_stop();
  ASSERT_EQ(status.wait_for(10s), std::future_status::ready);
  EXPECT_EQ(status.get(), 0);

  EXPECT_THAT(journal_.snapshot(),
              ::testing::ElementsAre("dns:constructed threads=2 store=open", "dns:start", "dns:reconfigure fake_ttl=5",
                                     "dns:reconfigure fake_ttl=7", "dns:stop"));
  // The drain deadline is gateway.drain_timeout from the stop request.
  EXPECT_GE(journal_.stop_deadline, before_stop + 7s);
  EXPECT_LE(journal_.stop_deadline, std::chrono::steady_clock::now() + 7s);
}

TEST_F(daemon_test, components_option_overrides_the_config) {
  const auto registry = registry_with("relay");
  // daemon.components (default: all four) is replaced by the option: only relay runs.
  daemon d{options(std::vector<std::string>{"relay"}), registry};
  EXPECT_THAT(d.current_config()->daemon.components, ::testing::ElementsAre("relay"));
}

TEST_F(daemon_test, a_failing_start_stops_the_daemon_with_status_1) {
  component_registry registry;
  registry.add("dns", [this](const component_context& ctx, daemon_services& services) {
    return std::make_unique<recording_component>("dns", ctx, services, journal_, false);
  });
  registry.add("socks", [this](const component_context& ctx, daemon_services& services) {
    return std::make_unique<recording_component>("socks", ctx, services, journal_, true);
  });
  daemon d{options(std::vector<std::string>{"dns", "socks"}), registry};
  auto status = std::async(std::launch::async, [&] { return d.run(); });
  ASSERT_EQ(status.wait_for(10s), std::future_status::ready);
  EXPECT_EQ(status.get(), 1);
  // The component that did start was stopped again.
  const auto events = journal_.snapshot();
  EXPECT_NE(std::find(events.begin(), events.end(), "dns:stop"), events.end());
  EXPECT_EQ(std::find(events.begin(), events.end(), "socks:stop"), events.end());
}

TEST_F(daemon_test, broken_config_is_rejected_at_construction) {
  write_config(60, "[tproxy]\nport = 0\n");
  const component_registry registry;
  try {
    daemon d{options(std::nullopt), registry};
    FAIL() << "no error";
  } catch (const config_error& e) {
    EXPECT_EQ(e.key(), "tproxy.port");
    EXPECT_EQ(e.line(), 18U);  // the line of `port = 0`
  }
}

TEST_F(daemon_test, a_missing_pool_key_stops_the_start) {
  std::filesystem::remove(dir_ / "pool.key");
  const auto registry = registry_with("dns");
  daemon d{options(std::vector<std::string>{"dns"}), registry};
  auto status = std::async(std::launch::async, [&] { return d.run(); });
  ASSERT_EQ(status.wait_for(10s), std::future_status::ready);
  EXPECT_EQ(status.get(), 1);
  EXPECT_TRUE(journal_.snapshot().empty());  // no component was even built
}

TEST_F(daemon_test, firewall_alone_opens_no_store) {
  std::filesystem::remove(dir_ / "pool.key");
  const auto registry = registry_with("firewall");
  daemon d{options(std::vector<std::string>{"firewall"}), registry};
  auto status = std::async(std::launch::async, [&] { return d.run(); });
  ASSERT_EQ(journal_.started.get_future().wait_for(10s), std::future_status::ready);
  d.request_stop();
  ASSERT_EQ(status.wait_for(10s), std::future_status::ready);
  EXPECT_EQ(status.get(), 0);
  EXPECT_EQ(journal_.snapshot().front(), "firewall:constructed threads=2 store=none");
  EXPECT_FALSE(std::filesystem::exists(dir_ / "mappings.mdb"));
}

TEST(parse_component_list, checks_names) {
  EXPECT_THAT(parse_component_list("dns,socks"), ::testing::ElementsAre("dns", "socks"));
  EXPECT_THROW(parse_component_list("dns,bogus"), std::invalid_argument);
  EXPECT_THROW(parse_component_list("dns,dns"), std::invalid_argument);
  EXPECT_THROW(parse_component_list(""), std::invalid_argument);
  EXPECT_THROW(parse_component_list("dns,"), std::invalid_argument);
}

}  // namespace
}  // namespace gate46::gateway
