// The nftables side of the capture, through libnftables: the table `inet gate46` replaced in
// one transaction, removed, or read back. Only gate46's table is ever touched: never a
// snapshot and restore of the whole ruleset. Needs CAP_NET_ADMIN.
#pragma once

#include <optional>
#include <stdexcept>
#include <string>

#include "gate46/tproxy/ruleset.hpp"

namespace gate46::tproxy {

class nft_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Runs an nft script as one transaction; nft's own error text on failure (nothing applied).
void run_nft(const std::string& script);

// Replaces the table atomically (make_apply_script); a failing rule leaves the old table.
void apply_table(const ruleset_settings& s);
void remove_table();
// `nft list table inet gate46`, or nullopt when there is no such table.
std::optional<std::string> live_table();

}  // namespace gate46::tproxy
