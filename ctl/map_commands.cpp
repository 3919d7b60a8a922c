// gate46ctl map ...: the mapping store for people and scripts.
#include <fnmatch.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "commands.hpp"
#include "gate46/common/dns_name.hpp"
#include "map_output.hpp"

namespace gate46::ctl {
namespace {

using mapping::mapping_key;
using mapping::store_errc;

void print(const std::string& text) {
  std::fputs(text.c_str(), stdout);
}
void print_json(const json& value) {
  print(value.dump(2) + '\n');
}

mapping::time_point now() {
  return std::chrono::system_clock::now();
}

// NAME|ADDR: an address if it parses as one, else a name.
mapping_key parse_key(const std::string& text) {
  if (const auto address = ip_address::parse(text)) {
    return *address;
  }
  if (const auto name = dns_name::parse(text); name && !name->is_root()) {
    return *name;
  }
  throw command_error{exit_status::failure, "\"" + text + "\" is neither an IP address nor a domain name"};
}

std::string key_text(const mapping_key& key) {
  return std::visit([](const auto& k) { return k.to_string(); }, key);
}

dns_name parse_name(const std::string& text) {
  const auto key = parse_key(text);
  if (const auto* name = std::get_if<dns_name>(&key)) {
    return *name;
  }
  throw command_error{exit_status::failure, text + " is an address; give a domain name"};
}

std::optional<ip_address> parse_address(const std::optional<std::string>& text, ip_family family) {
  if (!text) {
    return std::nullopt;
  }
  const auto address = ip_address::parse(*text);
  if (!address || address->family() != family) {
    throw command_error{exit_status::failure,
                        "\"" + *text + "\" is not an " + (family == ip_family::v4 ? "IPv4" : "IPv6") + " address"};
  }
  return address;
}

// fnmatch over the presentation form, with or without the final dot, ignoring case (names
// are stored lower-cased).
bool name_matches(const dns_name& name, const std::string& glob) {
  const auto text = name.to_string();
  const auto without_dot = text.size() > 1 ? text.substr(0, text.size() - 1) : text;
  return ::fnmatch(glob.c_str(), text.c_str(), FNM_CASEFOLD) == 0 ||
         ::fnmatch(glob.c_str(), without_dot.c_str(), FNM_CASEFOLD) == 0;
}

// The mapping of a name or of a fake address: outside the pools is exit 4, none is exit 3.
mapping::mapping find_existing(const store_session& session, const mapping_key& key) {
  if (const auto* address = std::get_if<ip_address>(&key); address != nullptr && !session.in_pools(*address)) {
    session.fail(store_errc::outside_pools, address->to_string());
  }
  auto found = session.store().get(key);
  if (!found) {
    session.fail(found.error(), key_text(key));
  }
  return *found;
}

}  // namespace

void map_list(const global_options& global, const list_options& options) {
  store_session session{global};
  session.open(store_access::existing);
  auto mappings = session.store().list({options.pool, options.expired});
  if (options.name_glob) {
    std::erase_if(mappings, [&](const mapping::mapping& m) { return !name_matches(m.name, *options.name_glob); });
  }
  std::ranges::sort(mappings, {}, [](const mapping::mapping& m) { return m.name.to_string(); });
  const auto t = now();
  if (options.json) {
    auto array = json::array();
    for (const auto& m : mappings) {
      array.push_back(mapping_json(m, t));
    }
    print_json(json{{"schema", json_schema}, {"mappings", std::move(array)}});
  } else {
    print(mapping_table(mappings, t));
  }
}

void map_get(const global_options& global, const std::string& key, bool json_output) {
  const auto parsed = parse_key(key);
  store_session session{global};
  session.open(store_access::existing);
  const auto m = find_existing(session, parsed);
  if (json_output) {
    print_json(json{{"schema", json_schema}, {"mapping", mapping_json(m, now())}});
  } else {
    print(mapping_details(m, now()));
  }
}

void map_add(const global_options& global, const add_options& options) {
  const auto name = parse_name(options.name);
  const auto v4 = parse_address(options.v4, ip_family::v4);
  const auto v6 = parse_address(options.v6, ip_family::v6);
  store_session session{global};
  for (const auto& address : {v4, v6}) {
    if (address && !session.in_pools(*address)) {
      session.fail(store_errc::outside_pools, address->to_string());
    }
  }
  session.open(store_access::create);
  auto added = session.store().add(name, v4, v6, options.pin);
  if (!added) {
    if (added.error() == store_errc::address_taken) {
      // Say which address, and whose it is.
      for (const auto& address : {v4, v6}) {
        if (!address) {
          continue;
        }
        if (const auto owner = session.store().find(*address); owner && owner->name != name) {
          throw command_error{exit_status::conflict, address->to_string() + " belongs to " + owner->name.to_string()};
        }
      }
      throw command_error{exit_status::conflict, name.to_string() +
                                                     ": the address is quarantined (a deleted mapping's lease "
                                                     "or hold has not passed yet)"};
    }
    session.fail(added.error(), name.to_string());
  }
  print(mapping_details(*added, now()));
}

void map_del(const global_options& global, const std::string& key, bool force) {
  const auto parsed = parse_key(key);
  store_session session{global};
  session.open(store_access::existing);
  const auto removed = session.store().remove(parsed, force);
  if (!removed) {
    if (removed.error() == store_errc::held) {
      throw command_error{exit_status::refused,
                          key_text(parsed) + " is held by a flow; `gate46ctl map del " + key +
                              " --force` deletes it anyway and quarantines its addresses until the hold and lease "
                              "pass"};
    }
    session.fail(removed.error(), key_text(parsed));
  }
  print("deleted " + removed->name.to_string() + (force ? " (forced)" : "") + '\n');
}

void map_pin(const global_options& global, const std::string& key, bool pinned) {
  const auto parsed = parse_key(key);
  store_session session{global};
  session.open(store_access::existing);
  const auto changed = session.store().set_pinned(parsed, pinned);
  if (!changed) {
    session.fail(changed.error(), key_text(parsed));
  }
  print((pinned ? "pinned " : "unpinned ") + changed->name.to_string() + '\n');
}

void map_flush(const global_options& global, bool expired_only) {
  store_session session{global};
  session.open(store_access::existing);
  const auto flushed = session.store().flush(expired_only);
  if (!flushed) {
    session.fail(flushed.error(), session.options().path.string());
  }
  print("flushed " + std::to_string(*flushed) + (*flushed == 1 ? " mapping" : " mappings") +
        (expired_only ? " eligible for recycling" : "") + " (pinned and held ones stay)\n");
}

void map_stats(const global_options& global, bool json_output) {
  store_session session{global};
  session.open(store_access::existing);
  const auto stats = session.store().stats();
  if (json_output) {
    print_json(stats_json(stats));
  } else {
    print(stats_table(stats));
  }
}

}  // namespace gate46::ctl
