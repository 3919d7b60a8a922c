#include "gate46/gateway/component_registry.hpp"

#include <algorithm>
#include <stdexcept>

namespace gate46::gateway {

void component_registry::add(std::string_view name, factory make) {
  const auto& known = known_components();
  if (std::find(known.begin(), known.end(), name) == known.end()) {
    throw std::logic_error{"component_registry: unknown component " + std::string{name}};
  }
  if (!factories_.emplace(std::string{name}, std::move(make)).second) {
    throw std::logic_error{"component_registry: component added twice: " + std::string{name}};
  }
}

const component_registry::factory* component_registry::find(std::string_view name) const {
  const auto it = factories_.find(name);
  return it == factories_.end() ? nullptr : &it->second;
}

bool needs_store(std::string_view component) {
  // dns allocates fake addresses; relay and socks map them back to names and hold them.
  return component == "dns" || component == "relay" || component == "socks";
}

}  // namespace gate46::gateway
