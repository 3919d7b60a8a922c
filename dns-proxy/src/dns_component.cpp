#include "gate46/dns/dns_component.hpp"

#include "gate46/common/log.hpp"
#include "gate46/dns/server.hpp"

namespace gate46::dns {
namespace {

server_settings server_settings_of(const config& cfg) {
  return {cfg.lan.networks, cfg.dns.tcp_idle_timeout, cfg.dns.tcp_max_per_client, cfg.dns.tcp_max};
}

class dns_component final : public component {
 public:
  dns_component(const component_context& context, upstream_resolver& resolver)
      : listen_{context.initial_config.dns.listen},
        resolver_{resolver},
        server_{context.workers, resolver, server_settings_of(context.initial_config)} {}

  [[nodiscard]] std::string_view name() const noexcept override { return "dns"; }

  void start() override {
    for (const auto& at : listen_) {
      server_.listen(at);
    }
  }

  void reconfigure(const config& cfg) override { server_.reconfigure(server_settings_of(cfg)); }

  boost::asio::awaitable<void> stop(std::chrono::steady_clock::time_point /*deadline*/) override {
    // DNS transactions are short: the server closes now and waits for answers in flight.
    co_await server_.stop();
  }

  [[nodiscard]] std::vector<counter> counters() const override {
    auto list = server_.counters();
    const auto r = resolver_.stats();
    list.insert(list.end(), {{"cache_hits", r.cache_hits},
                             {"upstream_queries", r.upstream_queries},
                             {"upstream_timeouts", r.upstream_timeouts},
                             {"tcp_fallbacks", r.tcp_fallbacks},
                             {"ignored_upstream_answers", r.ignored_answers}});
    return list;
  }

 private:
  std::vector<endpoint> listen_;
  upstream_resolver& resolver_;
  dns_server server_;
};

}  // namespace

upstream_settings upstream_settings_of(const config& cfg) {
  return {cfg.dns.upstreams, cfg.dns.upstream_timeout, cfg.dns.upstream_tries};
}

std::unique_ptr<component> make_dns_component(const component_context& context, upstream_resolver& resolver) {
  return std::make_unique<dns_component>(context, resolver);
}

}  // namespace gate46::dns
