// How gate46ctl shows the running daemon's state (status, flows, stats): aligned text for
// people. --json prints the daemon's reply itself (the control socket's schema 1, see
// gate46/common/control.hpp). Pure functions of their arguments.
#pragma once

#include <string>
#include <vector>

#include "gate46/common/control.hpp"

namespace gate46::ctl {

// "1d 02h", "3h 04m", "5m 06s", "7s".
std::string format_duration(std::uint64_t seconds);
// "512 B", "1.5 KiB", "32.0 MiB", "2.00 GiB".
std::string format_bytes(std::uint64_t bytes);

// One "key  value" line per field.
std::string status_text(const control::status_reply& status);
// CLIENT DESTINATION NAME TARGET UP DOWN AGE VIA, one row per flow (oldest first, as the daemon
// lists them); a header even when empty, and a count line.
std::string flows_table(const std::vector<control::flow_entry>& flows);
// Per owner (daemon, then each component), its counters; then the pools' pressure.
std::string stats_text(const control::stats_reply& stats);

}  // namespace gate46::ctl
