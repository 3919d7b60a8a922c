#include "gate46/gateway/component_registry.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <future>

#include <boost/asio/post.hpp>

namespace gate46 {
namespace {

using gateway::component_registry;
using gateway::daemon_services;

TEST(component_registry, finds_what_was_added) {
  component_registry registry;
  EXPECT_EQ(registry.find("dns"), nullptr);
  registry.add("dns", [](const component_context&, daemon_services&) { return std::unique_ptr<component>{}; });
  EXPECT_NE(registry.find("dns"), nullptr);
  EXPECT_EQ(registry.find("socks"), nullptr);
}

TEST(component_registry, rejects_unknown_and_duplicate_names) {
  component_registry registry;
  const auto make = [](const component_context&, daemon_services&) { return std::unique_ptr<component>{}; };
  EXPECT_THROW(registry.add("bogus", make), std::logic_error);
  registry.add("relay", make);
  EXPECT_THROW(registry.add("relay", make), std::logic_error);
}

TEST(component_registry, knows_which_components_share_the_store) {
  EXPECT_TRUE(gateway::needs_store("dns"));
  EXPECT_TRUE(gateway::needs_store("relay"));
  EXPECT_TRUE(gateway::needs_store("socks"));
  EXPECT_FALSE(gateway::needs_store("firewall"));
}

TEST(worker_pool, runs_work_on_every_thread_and_stops) {
  worker_pool pool{3};
  ASSERT_EQ(pool.size(), 3U);
  pool.start();
  std::vector<std::promise<std::thread::id>> ran(3);
  for (auto& p : ran) {
    boost::asio::post(pool.next(), [&p] { p.set_value(std::this_thread::get_id()); });
  }
  std::set<std::thread::id> threads;
  for (auto& p : ran) {
    auto f = p.get_future();
    ASSERT_EQ(f.wait_for(std::chrono::seconds{5}), std::future_status::ready);
    threads.insert(f.get());
  }
  // Round-robin puts each of three posts on a different context, each its own thread.
  EXPECT_EQ(threads.size(), 3U);
  EXPECT_EQ(threads.count(std::this_thread::get_id()), 0U);
  pool.stop();
  pool.stop();  // idempotent
}

}  // namespace
}  // namespace gate46
