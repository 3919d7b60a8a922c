#include "live_output.hpp"

#include <cstdio>
#include <limits>
#include <optional>

#include "gate46/common/address.hpp"
#include "map_output.hpp"

namespace gate46::ctl {
namespace {

std::string two_units(std::uint64_t big, const char* big_unit, std::uint64_t small, const char* small_unit) {
  char text[64];
  std::snprintf(text, sizeof text, "%llu%s %02llu%s", static_cast<unsigned long long>(big), big_unit,
                static_cast<unsigned long long>(small), small_unit);
  return text;
}

std::string percent(std::uint64_t part, std::uint64_t whole) {
  if (whole == 0) {
    return "-";
  }
  char text[32];
  std::snprintf(text, sizeof text, "%.1f%%", 100.0 * static_cast<double>(part) / static_cast<double>(whole));
  return text;
}

}  // namespace

std::string format_duration(std::uint64_t seconds) {
  constexpr std::uint64_t minute = 60;
  constexpr std::uint64_t hour = 60 * minute;
  constexpr std::uint64_t day = 24 * hour;
  if (seconds >= day) {
    return two_units(seconds / day, "d", seconds % day / hour, "h");
  }
  if (seconds >= hour) {
    return two_units(seconds / hour, "h", seconds % hour / minute, "m");
  }
  if (seconds >= minute) {
    return two_units(seconds / minute, "m", seconds % minute, "s");
  }
  return std::to_string(seconds) + "s";
}

std::string format_bytes(std::uint64_t bytes) {
  constexpr const char* units[] = {"KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
  if (bytes < 1024) {
    return std::to_string(bytes) + " B";
  }
  auto value = static_cast<double>(bytes) / 1024.0;
  std::size_t unit = 0;
  while (value >= 1024.0 && unit + 1 < std::size(units)) {
    value /= 1024.0;
    ++unit;
  }
  char text[32];
  std::snprintf(text, sizeof text,
                value < 10.0    ? "%.2f %s"
                : value < 100.0 ? "%.1f %s"
                                : "%.0f %s",
                value, units[unit]);
  return text;
}

std::string status_text(const control::status_reply& status) {
  std::string components;
  for (const auto& c : status.components) {
    components += (components.empty() ? "" : ", ") + c;
  }
  return aligned({
      {"gate46d", status.version},
      {"pid", std::to_string(status.pid)},
      {"user", status.user},
      {"config", status.config_path},
      {"uptime", format_duration(status.uptime_seconds)},
      {"components", components.empty() ? "(none)" : components},
      {"threads", std::to_string(status.threads)},
      {"reloads",
       std::to_string(status.reloads_applied) + " applied, " + std::to_string(status.reloads_rejected) + " rejected"},
  });
}

std::string flows_table(const std::vector<control::flow_entry>& flows) {
  std::vector<std::vector<std::string>> rows{{"CLIENT", "DESTINATION", "NAME", "TARGET", "UP", "DOWN", "AGE", "VIA"}};
  for (const auto& f : flows) {
    rows.push_back({f.client, f.destination, f.name.empty() ? "-" : f.name, f.target, format_bytes(f.bytes_up),
                    format_bytes(f.bytes_down), format_duration(f.age_ms / 1000), f.component});
  }
  return aligned(rows) + std::to_string(flows.size()) + (flows.size() == 1 ? " flow\n" : " flows\n");
}

std::string stats_text(const control::stats_reply& stats) {
  std::string out;
  for (const auto& group : stats.groups) {
    std::vector<std::vector<std::string>> rows;
    for (const auto& c : group.counters) {
      rows.push_back({"  " + c.name, std::to_string(c.value)});
    }
    out += group.owner + '\n' + aligned(rows);
  }
  if (!stats.pools.empty()) {
    std::vector<std::vector<std::string>> rows{{"POOL", "SIZE", "USED", "USED %", "ELIGIBLE", "ALLOCATION FAILURES"}};
    for (const auto& p : stats.pools) {
      const auto prefix = cidr::parse(p.prefix);
      // The exact size from the prefix: the daemon's figure saturates at 2^64-1.
      const auto size = prefix ? pool_size_text(*prefix) : std::to_string(p.size);
      rows.push_back({p.prefix, size, std::to_string(p.used), percent(p.used, p.size), std::to_string(p.eligible),
                      std::to_string(p.allocation_failures)});
    }
    out += "pools\n" + aligned(rows);
  }
  return out;
}

}  // namespace gate46::ctl
