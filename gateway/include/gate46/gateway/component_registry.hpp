// How gate46d builds its components: a factory per component name, given the shared
// executors and configuration (component_context) and the daemon's shared services.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>

#include "gate46/common/component.hpp"
#include "gate46/dns/resolver.hpp"
#include "gate46/gateway/flow_limit.hpp"
#include "gate46/mapping/store.hpp"

namespace gate46::gateway {

// What the daemon opens once and every component shares. Outlives the components.
struct daemon_services {
  // The mapping store; null when no running component needs it (firewall alone).
  mapping::mapping_store* store = nullptr;
  // The one upstream resolver and cache (dns.upstreams); null like the store.
  dns::upstream_resolver* resolver = nullptr;
  // gateway.max_flows, shared by socks and relay; null like the store.
  flow_limit* flows = nullptr;
};

class component_registry {
 public:
  using factory = std::function<std::unique_ptr<component>(const component_context&, daemon_services&)>;

  // Precondition: name is one of known_components() and not added yet (else std::logic_error).
  void add(std::string_view name, factory make);
  // nullptr when this build has no such component.
  [[nodiscard]] const factory* find(std::string_view name) const;

 private:
  std::map<std::string, factory, std::less<>> factories_;
};

// The components that use the mapping store and the resolver: the daemon opens both when one
// of them runs.
bool needs_store(std::string_view component);

}  // namespace gate46::gateway
