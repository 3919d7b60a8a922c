#include "gate46/tproxy/capture.hpp"

#include <atomic>

#include "gate46/common/log.hpp"
#include "gate46/tproxy/nftables.hpp"
#include "gate46/tproxy/routing.hpp"
#include "gate46/tproxy/ruleset.hpp"

namespace gate46::tproxy {

void apply_capture(const config& cfg) {
  apply_table(ruleset_settings_of(cfg));
  try {
    add_policy_routing(routing_settings_of(cfg));
  } catch (...) {
    // All or nothing: a table that marks packets for a route that is missing would blackhole
    // them.
    try {
      remove_capture(cfg);
    } catch (const std::exception& e) {
      logger("firewall")->error("undoing a partial apply: {}", e.what());
    }
    throw;
  }
}

void remove_capture(const config& cfg) {
  remove_policy_routing(routing_settings_of(cfg));
  remove_table();
}

namespace {

class firewall_component final : public component {
 public:
  explicit firewall_component(const component_context& context) : config_{context.initial_config} {}

  [[nodiscard]] std::string_view name() const noexcept override { return "firewall"; }

  void start() override {
    apply_capture(config_);
    applied_ = true;
    logger("firewall")
        ->info("capture rules applied: table inet gate46, fwmark {:#x}/{:#x} -> table {}", config_.tproxy.mark,
               config_.tproxy.mark_mask, config_.tproxy.route_table);
  }

  void reconfigure(const config& /*cfg*/) override {}  // every [tproxy] key is a restart key

  boost::asio::awaitable<void> stop(std::chrono::steady_clock::time_point /*deadline*/) override {
    if (applied_) {
      try {
        remove_capture(config_);
        logger("firewall")->info("capture rules removed");
      } catch (const std::exception& e) {
        logger("firewall")->error("removing the capture rules: {}", e.what());
      }
      applied_ = false;
    }
    co_return;
  }

  [[nodiscard]] std::vector<counter> counters() const override { return {{"applied", applied_ ? 1U : 0U}}; }

 private:
  config config_;
  std::atomic<bool> applied_{false};
};

}  // namespace

std::unique_ptr<component> make_firewall_component(const component_context& context) {
  return std::make_unique<firewall_component>(context);
}

}  // namespace gate46::tproxy
