#include "gate46/dns/dns_component.hpp"

#include "gate46/common/address_watcher.hpp"
#include "gate46/common/log.hpp"
#include "gate46/dns/responder.hpp"
#include "gate46/dns/server.hpp"

namespace gate46::dns {
namespace {

server_settings server_settings_of(const config& cfg) {
  return {cfg.lan.networks, cfg.dns.tcp_idle_timeout, cfg.dns.tcp_max_per_client, cfg.dns.tcp_max};
}

class dns_component final : public component {
 public:
  dns_component(const component_context& context, upstream_resolver& resolver, mapping::mapping_store& store)
      : listen_{context.initial_config.dns.listen},
        interfaces_{context.initial_config.lan.interfaces},
        control_{context.control},
        resolver_{resolver},
        responder_{resolver, store, policy_settings_of(context.initial_config)},
        server_{context.workers, responder_, server_settings_of(context.initial_config)} {}

  [[nodiscard]] std::string_view name() const noexcept override { return "dns"; }

  void start() override {
    for (const auto& at : listen_) {
      server_.listen(at);
    }
    if (listen_.empty()) {
      follow_interfaces();
    }
  }

  void reconfigure(const config& cfg) override {
    server_.reconfigure(server_settings_of(cfg));
    responder_.reconfigure(policy_settings_of(cfg));
  }

  // Listeners on the watcher's first dump are open once it is ready: its subscriber ran first.
  boost::asio::awaitable<void> started() override {
    if (watcher_) {
      (void)co_await watcher_->wait_ready();
    }
  }

  boost::asio::awaitable<void> stop(std::chrono::steady_clock::time_point /*deadline*/) override {
    // DNS transactions are short: the server closes now and waits for answers in flight.
    subscription_.reset();
    if (watcher_) {
      watcher_->stop();
    }
    co_await server_.stop();
  }

  [[nodiscard]] std::vector<counter> counters() const override {
    auto list = server_.counters();
    const auto answers = responder_.counters();
    list.insert(list.end(), answers.begin(), answers.end());
    const auto r = resolver_.stats();
    list.insert(list.end(), {{"cache_hits", r.cache_hits},
                             {"upstream_queries", r.upstream_queries},
                             {"upstream_timeouts", r.upstream_timeouts},
                             {"tcp_fallbacks", r.tcp_fallbacks},
                             {"ignored_upstream_answers", r.ignored_answers}});
    return list;
  }

 private:
  // dns.listen is empty: serve port 53 on every usable address of lan.interfaces, as the
  // kernel adds and removes them. The watcher calls back on the control thread, which owns the
  // server's listeners. Link-local addresses are skipped: LAN hosts use the global ones.
  void follow_interfaces() {
    watcher_ = std::make_unique<address_watcher>(control_, interfaces_);
    subscription_ = watcher_->subscribe([this](const address_change& change) {
      if (change.address.is_link_local()) {
        return;
      }
      const endpoint at{change.address.address, 53};
      if (change.what == address_change::kind::removed) {
        server_.close(at);
        return;
      }
      try {
        server_.listen(at);
      } catch (const std::exception& e) {
        logger("dns")->error("cannot serve DNS on {} ({}): {}", at.to_string(), change.address.interface, e.what());
      }
    });
  }

  std::vector<endpoint> listen_;
  std::vector<std::string> interfaces_;
  boost::asio::any_io_executor control_;
  upstream_resolver& resolver_;
  delegating_responder responder_;
  dns_server server_;
  std::unique_ptr<address_watcher> watcher_;
  address_watcher::subscription subscription_;
};

}  // namespace

upstream_settings upstream_settings_of(const config& cfg) {
  return {cfg.dns.upstreams, cfg.dns.upstream_timeout, cfg.dns.upstream_tries};
}

std::unique_ptr<component> make_dns_component(const component_context& context, upstream_resolver& resolver,
                                              mapping::mapping_store& store) {
  return std::make_unique<dns_component>(context, resolver, store);
}

}  // namespace gate46::dns
