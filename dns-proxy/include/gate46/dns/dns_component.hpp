// The `dns` component of gate46d: the DNS servers on dns.listen (or, by default, on the
// addresses of lan.interfaces, port 53), answering by the delegating policy from the shared
// upstream resolver and mapping store.
#pragma once

#include <memory>

#include "gate46/common/component.hpp"
#include "gate46/dns/resolver.hpp"
#include "gate46/mapping/store.hpp"

namespace gate46::dns {

std::unique_ptr<component> make_dns_component(const component_context& context, upstream_resolver& resolver,
                                              mapping::mapping_store& store);

// The resolver settings of a configuration.
upstream_settings upstream_settings_of(const config& cfg);

}  // namespace gate46::dns
