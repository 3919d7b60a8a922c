// How gate46ctl shows mappings and store statistics: aligned text for people, JSON for scripts.
// Pure functions of their arguments (the current time is a parameter).
//
// JSON, schema 1 (a new field may be added without a new schema number; a field that changes
// meaning or disappears bumps it):
//   map list:  {"schema": 1, "mappings": [MAPPING, ...]}              sorted by name
//   map get:   {"schema": 1, "mapping": MAPPING}
//   MAPPING:   {"name": "www.example.com.",       absolute presentation form
//               "v4": "198.18.7.1" | null, "v6": "2001:2::5" | null,
//               "created", "last_used", "expiry": RFC 3339 UTC with milliseconds
//                                                  ("2024-05-01T10:00:00.123Z"),
//               "held_until": RFC 3339 | null (never held),
//               "held": bool (held_until is in the future), "pinned": bool,
//               "eligible": bool (lease expired, not held, not pinned: may be recycled)}
//   map stats: {"schema": 1,
//               "pools": {"v4": POOL, "v6": POOL},
//               "mappings", "quarantined", "bytes_on_disk", "map_size": integers}
//   POOL:      {"prefix": "198.18.0.0/15", "size": integer (usable addresses, saturated at
//               2^64-1; the prefix gives the exact figure), "used", "pinned", "eligible",
//               "recycled", "allocation_failures": integers}
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "gate46/mapping/mapping.hpp"
#include "gate46/mapping/store.hpp"

namespace gate46::ctl {

using json = nlohmann::ordered_json;

constexpr int json_schema = 1;

// Rows of cells, left-aligned in columns two spaces apart; no trailing blanks.
std::string aligned(const std::vector<std::vector<std::string>>& rows);
// A pool's exact size: decimal up to 2^64-1, "2^N" for larger powers of two.
std::string pool_size_text(const cidr& prefix);

// "2024-05-01T10:00:00.123Z".
std::string format_rfc3339(mapping::time_point t);
// "now", "42s ago", "in 5m", "3h ago", "in 2d" (truncated to the largest unit that keeps at
// least two of it, below that the next smaller one).
std::string format_relative(mapping::time_point t, mapping::time_point now);

json mapping_json(const mapping::mapping& m, mapping::time_point now);

// NAME V4 V6 LAST-USED EXPIRY HELD PINNED, one row per mapping, columns aligned; a header even
// when empty.
std::string mapping_table(const std::vector<mapping::mapping>& mappings, mapping::time_point now);
// One "key  value" line per field, for map get and map add.
std::string mapping_details(const mapping::mapping& m, mapping::time_point now);

json stats_json(const mapping::store_stats& stats);
std::string stats_table(const mapping::store_stats& stats);

}  // namespace gate46::ctl
