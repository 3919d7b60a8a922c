// The whole capture, as gate46ctl firewall and the `firewall` component install it: the
// nftables table and the policy route of both families.
#pragma once

#include <memory>

#include "gate46/common/component.hpp"
#include "gate46/common/config.hpp"

namespace gate46::tproxy {

// Table first, then routes and rules; idempotent. Throws nft_error or routing_error.
void apply_capture(const config& cfg);
// Rules and routes first (no packet is marked for a route that is gone), then the table.
void remove_capture(const config& cfg);

// The `firewall` component: applies the capture at start, removes it at stop. Its keys are
// restart keys (ports, marks, pools, interfaces).
std::unique_ptr<component> make_firewall_component(const component_context& context);

}  // namespace gate46::tproxy
