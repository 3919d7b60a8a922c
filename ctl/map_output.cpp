#include "map_output.hpp"

#include <algorithm>
#include <array>
#include <cstdio>
#include <ctime>
#include <limits>
#include <optional>
#include <string_view>

#include "gate46/mapping/fake_pool.hpp"

namespace gate46::ctl {
namespace {

using mapping::time_point;
using std::chrono::duration_cast;

std::string address_text(const std::optional<ip_address>& address) {
  return address ? address->to_string() : "-";
}

json address_json(const std::optional<ip_address>& address) {
  return address ? json(address->to_string()) : json(nullptr);
}

bool is_held(const mapping::mapping& m, time_point now) {
  return m.held_until > now;
}

}  // namespace

// Rows of cells, left-aligned in columns two spaces apart; no trailing blanks.
std::string aligned(const std::vector<std::vector<std::string>>& rows) {
  std::vector<std::size_t> widths;
  for (const auto& row : rows) {
    widths.resize(std::max(widths.size(), row.size()));
    for (std::size_t i = 0; i < row.size(); ++i) {
      widths[i] = std::max(widths[i], row[i].size());
    }
  }
  std::string out;
  for (const auto& row : rows) {
    std::string line;
    for (std::size_t i = 0; i < row.size(); ++i) {
      line += row[i];
      if (i + 1 < row.size()) {
        line.append(widths[i] - row[i].size() + 2, ' ');
      }
    }
    out += line + '\n';
  }
  return out;
}

// A pool's exact size: decimal up to 2^64-1, "2^N" for larger powers of two (every IPv6 pool
// of /64 or shorter), decimal beyond.
std::string pool_size_text(const cidr& prefix) {
  const auto size = mapping::fake_pool{prefix}.size();
  if (size > std::numeric_limits<std::uint64_t>::max()) {
    for (unsigned bits = 64; bits < 128; ++bits) {
      if (size == (mapping::pool_index{1} << bits)) {
        return "2^" + std::to_string(bits);
      }
    }
    std::string digits;
    for (auto v = size; v != 0; v /= 10) {
      digits.insert(digits.begin(), static_cast<char>('0' + static_cast<int>(v % 10)));
    }
    return digits;
  }
  return std::to_string(static_cast<std::uint64_t>(size));
}

std::string format_rfc3339(time_point t) {
  const auto ms = std::chrono::floor<std::chrono::milliseconds>(t.time_since_epoch()).count();
  const auto seconds = static_cast<std::time_t>(ms >= 0 ? ms / 1000 : (ms - 999) / 1000);
  const auto millis = static_cast<int>(ms - static_cast<std::int64_t>(seconds) * 1000);
  std::tm utc{};
  ::gmtime_r(&seconds, &utc);
  std::array<char, 64> buffer{};
  std::snprintf(buffer.data(), buffer.size(), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", utc.tm_year + 1900, utc.tm_mon + 1,
                utc.tm_mday, utc.tm_hour, utc.tm_min, utc.tm_sec, millis);
  return buffer.data();
}

std::string format_relative(time_point t, time_point now) {
  const bool future = t > now;
  const auto seconds = duration_cast<std::chrono::seconds>(future ? t - now : now - t).count();
  if (seconds == 0) {
    return "now";
  }
  constexpr std::int64_t minute = 60;
  constexpr std::int64_t hour = 60 * minute;
  constexpr std::int64_t day = 24 * hour;
  std::string amount;
  if (seconds < 2 * minute) {
    amount = std::to_string(seconds) + "s";
  } else if (seconds < 2 * hour) {
    amount = std::to_string(seconds / minute) + "m";
  } else if (seconds < 2 * day) {
    amount = std::to_string(seconds / hour) + "h";
  } else {
    amount = std::to_string(seconds / day) + "d";
  }
  return future ? "in " + amount : amount + " ago";
}

json mapping_json(const mapping::mapping& m, time_point now) {
  return json{
      {"name", m.name.to_string()},
      {"v4", address_json(m.v4)},
      {"v6", address_json(m.v6)},
      {"created", format_rfc3339(m.created)},
      {"last_used", format_rfc3339(m.last_used)},
      {"expiry", format_rfc3339(m.expiry)},
      {"held_until", m.held_until == time_point{} ? json(nullptr) : json(format_rfc3339(m.held_until))},
      {"held", is_held(m, now)},
      {"pinned", m.pinned},
      {"eligible", m.eligible_for_recycling(now)},
  };
}

std::string mapping_table(const std::vector<mapping::mapping>& mappings, time_point now) {
  std::vector<std::vector<std::string>> rows{{"NAME", "V4", "V6", "LAST USED", "EXPIRY", "HELD", "PINNED"}};
  for (const auto& m : mappings) {
    rows.push_back({
        m.name.to_string(),
        address_text(m.v4),
        address_text(m.v6),
        format_relative(m.last_used, now),
        m.pinned ? "never" : format_relative(m.expiry, now),
        is_held(m, now) ? "yes" : "no",
        m.pinned ? "yes" : "no",
    });
  }
  return aligned(rows);
}

std::string mapping_details(const mapping::mapping& m, time_point now) {
  const auto when = [&](time_point t) { return format_rfc3339(t) + " (" + format_relative(t, now) + ")"; };
  std::string expiry = when(m.expiry);
  if (m.pinned) {
    expiry = "never (pinned)";
  } else if (m.eligible_for_recycling(now)) {
    expiry += ", eligible for recycling";
  }
  return aligned({
      {"name", m.name.to_string()},
      {"v4", address_text(m.v4)},
      {"v6", address_text(m.v6)},
      {"created", when(m.created)},
      {"last used", when(m.last_used)},
      {"expiry", expiry},
      {"held", is_held(m, now) ? "until " + when(m.held_until) : "no"},
      {"pinned", m.pinned ? "yes" : "no"},
  });
}

json stats_json(const mapping::store_stats& stats) {
  const auto pool = [](const mapping::pool_stats& p) {
    return json{
        {"prefix", p.prefix.to_string()},
        {"size", p.size},
        {"used", p.used},
        {"pinned", p.pinned},
        {"eligible", p.eligible},
        {"recycled", p.recycled},
        {"allocation_failures", p.allocation_failures},
    };
  };
  return json{
      {"schema", json_schema},
      {"pools", json{{"v4", pool(stats.v4)}, {"v6", pool(stats.v6)}}},
      {"mappings", stats.mappings},
      {"quarantined", stats.quarantined},
      {"bytes_on_disk", stats.bytes_on_disk},
      {"map_size", stats.map_size},
  };
}

std::string stats_table(const mapping::store_stats& stats) {
  std::vector<std::vector<std::string>> rows{
      {"POOL", "PREFIX", "SIZE", "USED", "PINNED", "ELIGIBLE", "RECYCLED", "ALLOCATION FAILURES"}};
  for (const auto* p : {&stats.v4, &stats.v6}) {
    rows.push_back({p == &stats.v4 ? "v4" : "v6", p->prefix.to_string(), pool_size_text(p->prefix),
                    std::to_string(p->used), std::to_string(p->pinned), std::to_string(p->eligible),
                    std::to_string(p->recycled), std::to_string(p->allocation_failures)});
  }
  return aligned(rows) + '\n' +
         aligned({
             {"mappings", std::to_string(stats.mappings)},
             {"quarantined", std::to_string(stats.quarantined) + " addresses"},
             {"on disk", std::to_string(stats.bytes_on_disk) + " bytes"},
             {"map size", std::to_string(stats.map_size) + " bytes"},
         });
}

}  // namespace gate46::ctl
