// The configuration loader. This is the only translation unit that includes toml++.
#include "gate46/common/config.hpp"

#include <algorithm>
#include <cerrno>
#include <fstream>
#include <limits>
#include <set>
#include <sstream>
#include <system_error>
#include <thread>
#include <utility>

#define TOML_HEADER_ONLY 1
#define TOML_EXCEPTIONS 0
#define TOML_ENABLE_FORMATTERS 0
#include <toml++/toml.h>

namespace gate46 {

config_error::config_error(std::string file, std::uint32_t line, std::uint32_t column, std::string key,
                           std::string message)
    : std::runtime_error{file + ':' + std::to_string(line) + ':' + std::to_string(column) + ": " +
                         (key.empty() ? std::string{} : key + ": ") + message},
      file_{std::move(file)},
      line_{line},
      column_{column},
      key_{std::move(key)},
      message_{std::move(message)} {}

const std::vector<std::string_view>& known_components() {
  static const std::vector<std::string_view> names{"dns", "socks", "relay", "firewall"};
  return names;
}

std::vector<cidr> gateway_config::default_deny() {
  std::vector<cidr> list;
  for (const char* text : {"0.0.0.0/8", "127.0.0.0/8", "169.254.0.0/16", "224.0.0.0/4", "255.255.255.255/32", "::/128",
                           "::1/128", "fe80::/10", "ff00::/8"}) {
    list.push_back(*cidr::parse(text));
  }
  return list;
}

std::string_view to_string(dns_mode mode) {
  switch (mode) {
    case dns_mode::translate:
      return "translate";
    case dns_mode::all:
      return "all";
    case dns_mode::never:
      return "never";
  }
  return "?";
}

std::string_view to_string(log_level level) {
  switch (level) {
    case log_level::trace:
      return "trace";
    case log_level::debug:
      return "debug";
    case log_level::info:
      return "info";
    case log_level::warn:
      return "warn";
    case log_level::error:
      return "error";
    case log_level::critical:
      return "critical";
    case log_level::off:
      return "off";
  }
  return "?";
}

namespace {

// Where a problem is: the file, and the position of the node (or of the table it is missing
// from). toml++ reports line 0 for tables that exist only implicitly; those point at line 1.
class config_reader_context {
 public:
  explicit config_reader_context(std::string file) : file_{std::move(file)} {}

  [[noreturn]] void fail(const toml::source_region& where, const std::string& key, const std::string& message) const {
    throw config_error{file_, std::max<std::uint32_t>(where.begin.line, 1),
                       std::max<std::uint32_t>(where.begin.column, 1), key, message};
  }

 private:
  std::string file_;
};

std::string type_name(const toml::node& node) {
  switch (node.type()) {
    case toml::node_type::table:
      return "a table";
    case toml::node_type::array:
      return "an array";
    case toml::node_type::string:
      return "a string";
    case toml::node_type::integer:
      return "an integer";
    case toml::node_type::floating_point:
      return "a float";
    case toml::node_type::boolean:
      return "a boolean";
    default:
      return "a date or time";
  }
}

// One TOML table being read: every key taken is remembered, and finish() rejects the rest, so
// a misspelt key is an error instead of a silently ignored default.
class table_reader {
 public:
  table_reader(const config_reader_context& ctx, const toml::table* table, std::string prefix)
      : ctx_{ctx}, table_{table}, prefix_{std::move(prefix)} {}

  [[nodiscard]] std::string key(std::string_view name) const {
    return prefix_.empty() ? std::string{name} : prefix_ + '.' + std::string{name};
  }

  // The node for `name`, or nullptr if absent.
  const toml::node* take(std::string_view name) {
    taken_.insert(std::string{name});
    return table_ == nullptr ? nullptr : table_->get(name);
  }

  const toml::node& require(std::string_view name) {
    const auto* node = take(name);
    if (node == nullptr) {
      ctx_.fail(where(), key(name), "required key is missing");
    }
    return *node;
  }

  // A nested table (`[dns]` or `dns = {...}`); absent tables read as empty.
  table_reader table(std::string_view name) {
    const auto* node = take(name);
    if (node != nullptr && !node->is_table()) {
      ctx_.fail(node->source(), key(name), "expected a table, got " + type_name(*node));
    }
    return table_reader{ctx_, node == nullptr ? nullptr : node->as_table(), key(name)};
  }

  void finish() const {
    if (table_ == nullptr) {
      return;
    }
    for (auto&& [name, node] : *table_) {
      if (!taken_.contains(std::string{name.str()})) {
        ctx_.fail(name.source().begin.line != 0 ? name.source() : node.source(), key(name.str()), "unknown key");
      }
    }
  }

  [[nodiscard]] toml::source_region where() const {
    return table_ == nullptr ? toml::source_region{} : table_->source();
  }
  [[nodiscard]] const config_reader_context& context() const { return ctx_; }

 private:
  const config_reader_context& ctx_;
  const toml::table* table_;
  std::string prefix_;
  std::set<std::string, std::less<>> taken_;
};

// ---- typed values -------------------------------------------------------------------------

struct value_site {
  const config_reader_context& ctx;
  const toml::node& node;
  std::string key;

  [[noreturn]] void fail(const std::string& message) const { ctx.fail(node.source(), key, message); }
};

std::int64_t as_integer(const value_site& site, std::int64_t min, std::int64_t max) {
  const auto* value = site.node.as_integer();
  if (value == nullptr) {
    site.fail("expected an integer, got " + type_name(site.node));
  }
  const auto v = value->get();
  if (v < min || v > max) {
    site.fail("value " + std::to_string(v) + " is out of range [" + std::to_string(min) + ", " + std::to_string(max) +
              "]");
  }
  return v;
}

std::string as_string(const value_site& site) {
  const auto* value = site.node.as_string();
  if (value == nullptr) {
    site.fail("expected a string, got " + type_name(site.node));
  }
  return value->get();
}

bool as_bool(const value_site& site) {
  const auto* value = site.node.as_boolean();
  if (value == nullptr) {
    site.fail("expected a boolean, got " + type_name(site.node));
  }
  return value->get();
}

template <typename Enum>
Enum as_enum(const value_site& site, std::initializer_list<std::pair<std::string_view, Enum>> choices) {
  const auto text = as_string(site);
  std::string names;
  for (const auto& [name, value] : choices) {
    if (name == text) {
      return value;
    }
    names += (names.empty() ? "" : ", ") + std::string{name};
  }
  site.fail("\"" + text + "\" is not one of: " + names);
}

// Each element of an array, as its own site ("lan.networks[2]").
template <typename Fn>
void for_each_element(const value_site& site, Fn&& fn) {
  const auto* array = site.node.as_array();
  if (array == nullptr) {
    site.fail("expected an array, got " + type_name(site.node));
  }
  std::size_t index = 0;
  for (const auto& element : *array) {
    fn(value_site{site.ctx, element, site.key + '[' + std::to_string(index++) + ']'});
  }
}

cidr as_cidr(const value_site& site) {
  const auto text = as_string(site);
  cidr::parse_error error{};
  auto parsed = cidr::parse(text, &error);
  if (!parsed) {
    site.fail("\"" + text + "\": " + std::string{to_string(error)});
  }
  return *parsed;
}

endpoint as_endpoint(const value_site& site, std::uint16_t default_port) {
  const auto text = as_string(site);
  auto parsed = endpoint::parse(text, default_port);
  if (!parsed || parsed->port == 0) {
    site.fail("\"" + text + "\" is not an address with an optional port (192.0.2.1:53, [2001:db8::1]:53)");
  }
  return *parsed;
}

std::vector<cidr> as_cidr_list(const value_site& site) {
  std::vector<cidr> out;
  for_each_element(site, [&](const value_site& element) { out.push_back(as_cidr(element)); });
  return out;
}

std::vector<endpoint> as_endpoint_list(const value_site& site, std::uint16_t default_port) {
  std::vector<endpoint> out;
  for_each_element(site, [&](const value_site& element) { out.push_back(as_endpoint(element, default_port)); });
  return out;
}

// Reads optional key `name` of `reader` with `convert` into `out`; absent keys keep the default.
template <typename T, typename Convert>
void read(table_reader& reader, std::string_view name, T& out, Convert&& convert) {
  if (const auto* node = reader.take(name)) {
    out = convert(value_site{reader.context(), *node, reader.key(name)});
  }
}

template <typename Duration>
auto duration_in(std::int64_t min, std::int64_t max) {
  return [=](const value_site& site) { return Duration{as_integer(site, min, max)}; };
}

// ---- validation helpers --------------------------------------------------------------------

bool valid_interface_name(std::string_view name) {
  // Linux IFNAMSIZ is 16 including the NUL; '/' and whitespace are never valid.
  return !name.empty() && name.size() < 16 && name != "." && name != ".." &&
         std::none_of(name.begin(), name.end(), [](char c) { return c == '/' || c == ':' || c <= ' ' || c == 0x7f; });
}

// Lower-cases a domain suffix and makes it absolute; nullopt if it is not a valid name.
std::optional<std::string> normalise_suffix(std::string_view text) {
  std::string name;
  if (text == ".") {
    return std::string{"."};
  }
  std::size_t label = 0;
  for (char c : text) {
    if (c == '.') {
      if (label == 0) {
        return std::nullopt;
      }
      label = 0;
    } else {
      const bool ok =
          (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
      if (!ok || ++label > 63) {
        return std::nullopt;
      }
      c = static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
    }
    name += c;
  }
  if (name.empty()) {
    return std::nullopt;
  }
  if (name.back() != '.') {
    name += '.';
  }
  return name.size() <= 254 ? std::optional{name} : std::nullopt;
}

bool overlaps(const cidr& a, const cidr& b) {
  return a.contains(b.network()) || b.contains(a.network());
}

// ---- sections ------------------------------------------------------------------------------

void read_daemon(table_reader reader, daemon_config& out) {
  if (const auto* node = reader.take("components")) {
    const value_site site{reader.context(), *node, reader.key("components")};
    out.components.clear();
    for_each_element(site, [&](const value_site& element) {
      auto name = as_string(element);
      const auto& known = known_components();
      if (std::find(known.begin(), known.end(), name) == known.end()) {
        element.fail("unknown component \"" + name + "\" (known: dns, socks, relay, firewall)");
      }
      if (std::find(out.components.begin(), out.components.end(), name) != out.components.end()) {
        element.fail("component \"" + name + "\" is listed twice");
      }
      out.components.push_back(std::move(name));
    });
    if (out.components.empty()) {
      site.fail("at least one component is needed");
    }
  }
  out.threads = std::max(1U, std::thread::hardware_concurrency());
  read(reader, "threads", out.threads,
       [](const value_site& s) { return static_cast<unsigned>(as_integer(s, 1, 256)); });
  read(reader, "user", out.user, [](const value_site& s) {
    auto user = as_string(s);
    if (user.empty()) {
      s.fail("must not be empty");
    }
    return user;
  });
  reader.finish();
}

void read_lan(table_reader reader, lan_config& out) {
  {
    const value_site site{reader.context(), reader.require("interfaces"), reader.key("interfaces")};
    for_each_element(site, [&](const value_site& element) {
      auto name = as_string(element);
      if (!valid_interface_name(name)) {
        element.fail("\"" + name + "\" is not a valid interface name");
      }
      out.interfaces.push_back(std::move(name));
    });
    if (out.interfaces.empty()) {
      site.fail("at least one LAN interface is needed");
    }
  }
  {
    const value_site site{reader.context(), reader.require("networks"), reader.key("networks")};
    out.networks = as_cidr_list(site);
    if (out.networks.empty()) {
      site.fail("at least one LAN network is needed");
    }
  }
  reader.finish();
}

void read_store(table_reader reader, store_config& out) {
  read(reader, "path", out.path, [](const value_site& s) {
    auto path = as_string(s);
    if (path.empty()) {
      s.fail("must not be empty");
    }
    return std::filesystem::path{path};
  });
  read(reader, "map_size", out.map_size, [](const value_site& s) {
    return static_cast<std::uint64_t>(as_integer(s, std::int64_t{1} << 20, std::int64_t{1} << 40));
  });
  read(reader, "sync_interval_ms", out.sync_interval, duration_in<milliseconds>(0, 3'600'000));
  reader.finish();
}

cidr read_pool(table_reader& reader, std::string_view name, ip_family family, const cidr& fallback) {
  cidr pool = fallback;
  read(reader, name, pool, [family](const value_site& s) {
    auto parsed = as_cidr(s);
    if (parsed.family() != family) {
      s.fail(std::string{"must be an "} + (family == ip_family::v4 ? "IPv4" : "IPv6") + " prefix");
    }
    return parsed;
  });
  return pool;
}

void read_pools(table_reader reader, pools_config& out) {
  out.ipv4 = read_pool(reader, "ipv4", ip_family::v4, out.ipv4);
  out.ipv6 = read_pool(reader, "ipv6", ip_family::v6, out.ipv6);
  read(reader, "key_file", out.key_file, [](const value_site& s) { return std::filesystem::path{as_string(s)}; });
  read(reader, "lease_grace", out.lease_grace, duration_in<seconds>(0, 365LL * 86400));
  read(reader, "hold_refresh", out.hold_refresh, duration_in<seconds>(1, 86400));
  reader.finish();
}

dns_mode as_dns_mode(const value_site& site, bool allow_never) {
  if (allow_never) {
    return as_enum<dns_mode>(site,
                             {{"translate", dns_mode::translate}, {"all", dns_mode::all}, {"never", dns_mode::never}});
  }
  return as_enum<dns_mode>(site, {{"translate", dns_mode::translate}, {"all", dns_mode::all}});
}

void read_dns_rules(const value_site& site, std::vector<dns_rule>& out) {
  const auto* array = site.node.as_array();
  if (array == nullptr || !array->is_array_of_tables()) {
    site.fail("expected an array of tables ([[dns.rule]])");
  }
  std::size_t index = 0;
  for (const auto& element : *array) {
    table_reader rule_reader{site.ctx, element.as_table(), site.key + '[' + std::to_string(index++) + ']'};
    dns_rule rule;
    const value_site suffix_site{site.ctx, rule_reader.require("suffix"), rule_reader.key("suffix")};
    const auto text = as_string(suffix_site);
    auto suffix = normalise_suffix(text);
    if (!suffix) {
      suffix_site.fail("\"" + text + "\" is not a domain name");
    }
    rule.suffix = std::move(*suffix);
    const value_site mode_site{site.ctx, rule_reader.require("mode"), rule_reader.key("mode")};
    rule.mode = as_dns_mode(mode_site, true);
    rule_reader.finish();
    for (const auto& earlier : out) {
      if (earlier.suffix == rule.suffix) {
        suffix_site.fail("suffix \"" + rule.suffix + "\" already has a rule");
      }
    }
    out.push_back(std::move(rule));
  }
}

void read_dns(table_reader reader, dns_config& out) {
  read(reader, "listen", out.listen, [](const value_site& s) { return as_endpoint_list(s, 53); });
  {
    const value_site site{reader.context(), reader.require("upstreams"), reader.key("upstreams")};
    out.upstreams = as_endpoint_list(site, 53);
    if (out.upstreams.empty()) {
      site.fail("at least one upstream resolver is needed");
    }
  }
  read(reader, "mode", out.mode, [](const value_site& s) { return as_dns_mode(s, false); });
  read(reader, "fake_ttl", out.fake_ttl, duration_in<seconds>(1, 86400));
  read(reader, "upstream_timeout_ms", out.upstream_timeout, duration_in<milliseconds>(10, 60'000));
  read(reader, "upstream_tries", out.upstream_tries,
       [](const value_site& s) { return static_cast<unsigned>(as_integer(s, 1, 10)); });
  read(reader, "tcp_idle_timeout", out.tcp_idle_timeout, duration_in<seconds>(1, 3600));
  read(reader, "tcp_max_per_client", out.tcp_max_per_client,
       [](const value_site& s) { return static_cast<unsigned>(as_integer(s, 1, 65535)); });
  read(reader, "tcp_max", out.tcp_max,
       [](const value_site& s) { return static_cast<unsigned>(as_integer(s, 1, 65535)); });
  if (const auto* node = reader.take("rule")) {
    read_dns_rules(value_site{reader.context(), *node, reader.key("rule")}, out.rules);
  }
  reader.finish();
}

void read_socks_networks(const value_site& site, std::vector<socks_network>& out) {
  const auto* array = site.node.as_array();
  if (array == nullptr || !array->is_array_of_tables()) {
    site.fail("expected an array of tables ([[gateway.socks_network]])");
  }
  std::size_t index = 0;
  for (const auto& element : *array) {
    table_reader entry{site.ctx, element.as_table(), site.key + '[' + std::to_string(index++) + ']'};
    const value_site cidr_site{site.ctx, entry.require("cidr"), entry.key("cidr")};
    socks_network network{as_cidr(cidr_site), socks_auth::none};
    read(entry, "auth", network.auth, [](const value_site& s) {
      return as_enum<socks_auth>(s, {{"none", socks_auth::none}, {"password", socks_auth::password}});
    });
    entry.finish();
    out.push_back(network);
  }
}

void read_socks_users(const value_site& site, std::vector<socks_user>& out) {
  const auto* array = site.node.as_array();
  if (array == nullptr || !array->is_array_of_tables()) {
    site.fail("expected an array of tables ([[gateway.user]])");
  }
  std::size_t index = 0;
  for (const auto& element : *array) {
    table_reader entry{site.ctx, element.as_table(), site.key + '[' + std::to_string(index++) + ']'};
    const value_site name_site{site.ctx, entry.require("name"), entry.key("name")};
    socks_user user{as_string(name_site), {}};
    // RFC 1929: ULEN is one octet and at least 1.
    if (user.name.empty() || user.name.size() > 255) {
      name_site.fail("a user name is 1 to 255 bytes (RFC 1929)");
    }
    if (std::any_of(out.begin(), out.end(), [&](const socks_user& u) { return u.name == user.name; })) {
      name_site.fail("user \"" + user.name + "\" is defined twice");
    }
    const value_site hash_site{site.ctx, entry.require("hash"), entry.key("hash")};
    user.password_hash = as_string(hash_site);
    if (!user.password_hash.starts_with("$argon2id$")) {
      hash_site.fail("expected an argon2id hash (\"$argon2id$...\", made by gate46ctl passwd)");
    }
    entry.finish();
    out.push_back(std::move(user));
  }
}

void read_gateway(table_reader reader, gateway_config& out) {
  const auto count = [](std::int64_t min, std::int64_t max) {
    return [=](const value_site& s) { return static_cast<unsigned>(as_integer(s, min, max)); };
  };
  read(reader, "socks_listen", out.socks_listen, [](const value_site& s) { return as_endpoint_list(s, 1080); });
  if (const auto* node = reader.take("socks_network")) {
    read_socks_networks(value_site{reader.context(), *node, reader.key("socks_network")}, out.socks_networks);
  }
  if (const auto* node = reader.take("user")) {
    read_socks_users(value_site{reader.context(), *node, reader.key("user")}, out.users);
  }
  read(reader, "prefer_family", out.prefer_family, [](const value_site& s) {
    return as_enum<ip_family>(s, {{"ipv6", ip_family::v6}, {"ipv4", ip_family::v4}});
  });
  read(reader, "happy_eyeballs_delay_ms", out.happy_eyeballs_delay, duration_in<milliseconds>(10, 10'000));
  read(reader, "connect_timeout", out.connect_timeout, duration_in<seconds>(1, 600));
  read(reader, "tcp_idle_timeout", out.tcp_idle_timeout, duration_in<seconds>(1, 7LL * 86400));
  read(reader, "udp_idle_timeout", out.udp_idle_timeout, duration_in<seconds>(1, 86400));
  read(reader, "udp_dns_idle_timeout", out.udp_dns_idle_timeout, duration_in<seconds>(1, 3600));
  read(reader, "bind_timeout", out.bind_timeout, duration_in<seconds>(1, 3600));
  read(reader, "max_flows", out.max_flows, [](const value_site& s) {
    return std::optional<unsigned>{static_cast<unsigned>(as_integer(s, 1, 10'000'000))};
  });
  read(reader, "udp_sessions_per_client", out.udp_sessions_per_client, count(1, 1'000'000));
  read(reader, "udp_sessions_max", out.udp_sessions_max, count(1, 10'000'000));
  read(reader, "drain_timeout", out.drain_timeout, duration_in<seconds>(0, 3600));
  read(reader, "deny", out.deny, as_cidr_list);
  reader.finish();
}

void read_tproxy(table_reader reader, tproxy_config& out) {
  constexpr std::int64_t u32_max = std::numeric_limits<std::uint32_t>::max();
  const auto u32 = [](std::int64_t min, std::int64_t max) {
    return [=](const value_site& s) { return static_cast<std::uint32_t>(as_integer(s, min, max)); };
  };
  read(reader, "port", out.port,
       [](const value_site& s) { return static_cast<std::uint16_t>(as_integer(s, 1, 65535)); });
  read(reader, "mark", out.mark, u32(1, u32_max));
  read(reader, "mark_mask", out.mark_mask, u32(1, u32_max));
  read(reader, "bypass_mark", out.bypass_mark, u32(1, u32_max));
  // 0 and 253-255 are the kernel's unspec, default, main and local tables.
  read(reader, "route_table", out.route_table, [](const value_site& s) {
    const auto table = as_integer(s, 1, std::numeric_limits<std::uint32_t>::max());
    if (table >= 253 && table <= 255) {
      s.fail("tables 253-255 are the kernel's default, main and local tables");
    }
    return static_cast<std::uint32_t>(table);
  });
  // Below 32766, where the main table's rule sits, or the capture route would never be reached.
  read(reader, "rule_priority", out.rule_priority, u32(2, 32765));  // PRIORITY-1 holds the IPv4 reverse-path rule
  read(reader, "capture_dns", out.capture_dns, as_bool);
  reader.finish();
}

void read_control(table_reader reader, control_config& out) {
  read(reader, "socket", out.socket, [](const value_site& s) {
    auto path = as_string(s);
    // sun_path holds 108 bytes including the NUL.
    if (path.empty() || path.size() > 107) {
      s.fail("a Unix socket path is 1 to 107 bytes");
    }
    return std::filesystem::path{path};
  });
  reader.finish();
}

void read_log(table_reader reader, log_config& out) {
  read(reader, "level", out.level, [](const value_site& s) {
    return as_enum<log_level>(s, {{"trace", log_level::trace},
                                  {"debug", log_level::debug},
                                  {"info", log_level::info},
                                  {"warn", log_level::warn},
                                  {"error", log_level::error},
                                  {"critical", log_level::critical},
                                  {"off", log_level::off}});
  });
  read(reader, "format", out.format, [](const value_site& s) {
    return as_enum<log_format>(s, {{"text", log_format::text}, {"json", log_format::json}});
  });
  reader.finish();
}

// Checks that span sections: every one names the key it blames.
void validate_across_sections(const config_reader_context& ctx, const toml::table& root, config& cfg) {
  const auto site_of = [&](std::string_view dotted) {
    const auto node = root.at_path(dotted);
    return node ? node.node()->source() : root.source();
  };

  for (const auto* pool : {&cfg.pools.ipv4, &cfg.pools.ipv6}) {
    const std::string key = pool == &cfg.pools.ipv4 ? "pools.ipv4" : "pools.ipv6";
    for (const auto& network : cfg.lan.networks) {
      if (overlaps(*pool, network)) {
        ctx.fail(site_of(key), key,
                 pool->to_string() + " overlaps LAN network " + network.to_string() +
                     ": fake addresses must never be real ones");
      }
    }
  }
  for (const auto& upstream : cfg.dns.upstreams) {
    if (cfg.pools.ipv4.contains(upstream.address) || cfg.pools.ipv6.contains(upstream.address)) {
      ctx.fail(site_of("dns.upstreams"), "dns.upstreams",
               upstream.to_string() + " is inside a fake pool: that would loop through the gateway");
    }
  }

  const auto& t = cfg.tproxy;
  if ((t.mark & ~t.mark_mask) != 0) {
    ctx.fail(site_of("tproxy.mark"), "tproxy.mark", "has bits outside tproxy.mark_mask");
  }
  if ((t.bypass_mark & t.mark_mask) == t.mark) {
    ctx.fail(site_of("tproxy.bypass_mark"), "tproxy.bypass_mark",
             "equals tproxy.mark under tproxy.mark_mask: the gateway's own traffic would be captured");
  }

  if (cfg.gateway.socks_networks.empty()) {
    for (const auto& network : cfg.lan.networks) {
      cfg.gateway.socks_networks.push_back({network, socks_auth::none});
    }
    cfg.gateway.socks_networks.push_back({*cidr::parse("127.0.0.0/8"), socks_auth::none});
    cfg.gateway.socks_networks.push_back({*cidr::parse("::1/128"), socks_auth::none});
  }
  const bool needs_users = std::any_of(cfg.gateway.socks_networks.begin(), cfg.gateway.socks_networks.end(),
                                       [](const socks_network& n) { return n.auth == socks_auth::password; });
  if (needs_users && cfg.gateway.users.empty()) {
    ctx.fail(site_of("gateway.socks_network"), "gateway.socks_network",
             "a network requires password authentication but no [[gateway.user]] is defined");
  }
}

// toml++ 3.3.0 (Debian 12) reaches __builtin_unreachable() when its whitespace test meets
// certain non-ASCII code points (upstream issues 190 and 295; found here by the config fuzzer).
// Every gate46 key and value is ASCII by nature (addresses, interface names, paths, DNS names,
// hashes), so the file must be ASCII; other characters can still be written as \uXXXX escapes
// inside strings, which never reach that test.
void require_ascii(const config_reader_context& ctx, std::string_view text) {
  std::uint32_t line = 1;
  std::uint32_t column = 1;
  for (const char c : text) {
    if (static_cast<unsigned char>(c) >= 0x80) {
      toml::source_region where;
      where.begin = {line, column};
      ctx.fail(where, "",
               "non-ASCII byte; gate46 configuration files are ASCII (write other characters as \\uXXXX "
               "escapes inside strings)");
    }
    if (c == '\n') {
      ++line;
      column = 1;
    } else {
      ++column;
    }
  }
}

}  // namespace

config parse_config(std::string_view text, std::string_view source_name) {
  const config_reader_context ctx{std::string{source_name}};
  require_ascii(ctx, text);
  auto parsed = toml::parse(text, source_name);
  if (!parsed) {
    const auto& error = parsed.error();
    ctx.fail(error.source(), "", std::string{error.description()});
  }
  const toml::table& root = parsed.table();

  config cfg;
  cfg.source = std::string{source_name};
  table_reader reader{ctx, &root, ""};
  read_daemon(reader.table("daemon"), cfg.daemon);
  read_lan(reader.table("lan"), cfg.lan);
  read_store(reader.table("store"), cfg.store);
  read_pools(reader.table("pools"), cfg.pools);
  read_dns(reader.table("dns"), cfg.dns);
  read_gateway(reader.table("gateway"), cfg.gateway);
  read_tproxy(reader.table("tproxy"), cfg.tproxy);
  read_control(reader.table("control"), cfg.control);
  read_log(reader.table("log"), cfg.log);
  reader.finish();
  validate_across_sections(ctx, root, cfg);
  return cfg;
}

config load_config(const std::filesystem::path& path) {
  std::ifstream in{path, std::ios::binary};
  if (!in) {
    throw config_error{path.string(), 0, 0, "", "cannot read the file: " + std::generic_category().message(errno)};
  }
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) {
    throw config_error{path.string(), 0, 0, "", "read error"};
  }
  return parse_config(text.str(), path.string());
}

namespace {

struct key_info {
  std::string_view key;
  bool live;  // applied by reconfigure(); otherwise it needs a restart
  bool (*differs)(const config&, const config&);
};

template <auto Section, auto Member>
bool member_differs(const config& a, const config& b) {
  return (a.*Section).*Member != (b.*Section).*Member;
}

constexpr bool live = true;
constexpr bool restart = false;

// Which keys ARCHITECTURE.md calls live: dns.upstreams, dns.mode, dns.fake_ttl, dns.rule,
// gateway.user, gateway.socks_network, gateway.deny, timeouts and limits, log.*. Everything
// bound to a socket, an address, the store or the rules needs a restart.
const key_info key_table[] = {
    {"daemon.components", restart, member_differs<&config::daemon, &daemon_config::components>},
    {"daemon.threads", restart, member_differs<&config::daemon, &daemon_config::threads>},
    {"daemon.user", restart, member_differs<&config::daemon, &daemon_config::user>},
    {"lan.interfaces", restart, member_differs<&config::lan, &lan_config::interfaces>},
    {"lan.networks", restart, member_differs<&config::lan, &lan_config::networks>},
    {"store.path", restart, member_differs<&config::store, &store_config::path>},
    {"store.map_size", restart, member_differs<&config::store, &store_config::map_size>},
    {"store.sync_interval_ms", restart, member_differs<&config::store, &store_config::sync_interval>},
    {"pools.ipv4", restart, member_differs<&config::pools, &pools_config::ipv4>},
    {"pools.ipv6", restart, member_differs<&config::pools, &pools_config::ipv6>},
    {"pools.key_file", restart, member_differs<&config::pools, &pools_config::key_file>},
    {"pools.lease_grace", live, member_differs<&config::pools, &pools_config::lease_grace>},
    {"pools.hold_refresh", live, member_differs<&config::pools, &pools_config::hold_refresh>},
    {"dns.listen", restart, member_differs<&config::dns, &dns_config::listen>},
    {"dns.upstreams", live, member_differs<&config::dns, &dns_config::upstreams>},
    {"dns.mode", live, member_differs<&config::dns, &dns_config::mode>},
    {"dns.fake_ttl", live, member_differs<&config::dns, &dns_config::fake_ttl>},
    {"dns.upstream_timeout_ms", live, member_differs<&config::dns, &dns_config::upstream_timeout>},
    {"dns.upstream_tries", live, member_differs<&config::dns, &dns_config::upstream_tries>},
    {"dns.tcp_idle_timeout", live, member_differs<&config::dns, &dns_config::tcp_idle_timeout>},
    {"dns.tcp_max_per_client", live, member_differs<&config::dns, &dns_config::tcp_max_per_client>},
    {"dns.tcp_max", live, member_differs<&config::dns, &dns_config::tcp_max>},
    {"dns.rule", live, member_differs<&config::dns, &dns_config::rules>},
    {"gateway.socks_listen", restart, member_differs<&config::gateway, &gateway_config::socks_listen>},
    {"gateway.socks_network", live, member_differs<&config::gateway, &gateway_config::socks_networks>},
    {"gateway.user", live, member_differs<&config::gateway, &gateway_config::users>},
    {"gateway.prefer_family", live, member_differs<&config::gateway, &gateway_config::prefer_family>},
    {"gateway.happy_eyeballs_delay_ms", live, member_differs<&config::gateway, &gateway_config::happy_eyeballs_delay>},
    {"gateway.connect_timeout", live, member_differs<&config::gateway, &gateway_config::connect_timeout>},
    {"gateway.tcp_idle_timeout", live, member_differs<&config::gateway, &gateway_config::tcp_idle_timeout>},
    {"gateway.udp_idle_timeout", live, member_differs<&config::gateway, &gateway_config::udp_idle_timeout>},
    {"gateway.udp_dns_idle_timeout", live, member_differs<&config::gateway, &gateway_config::udp_dns_idle_timeout>},
    {"gateway.bind_timeout", live, member_differs<&config::gateway, &gateway_config::bind_timeout>},
    {"gateway.max_flows", live, member_differs<&config::gateway, &gateway_config::max_flows>},
    {"gateway.udp_sessions_per_client", live,
     member_differs<&config::gateway, &gateway_config::udp_sessions_per_client>},
    {"gateway.udp_sessions_max", live, member_differs<&config::gateway, &gateway_config::udp_sessions_max>},
    {"gateway.drain_timeout", live, member_differs<&config::gateway, &gateway_config::drain_timeout>},
    {"gateway.deny", live, member_differs<&config::gateway, &gateway_config::deny>},
    {"tproxy.port", restart, member_differs<&config::tproxy, &tproxy_config::port>},
    {"tproxy.mark", restart, member_differs<&config::tproxy, &tproxy_config::mark>},
    {"tproxy.mark_mask", restart, member_differs<&config::tproxy, &tproxy_config::mark_mask>},
    {"tproxy.bypass_mark", restart, member_differs<&config::tproxy, &tproxy_config::bypass_mark>},
    {"tproxy.route_table", restart, member_differs<&config::tproxy, &tproxy_config::route_table>},
    {"tproxy.rule_priority", restart, member_differs<&config::tproxy, &tproxy_config::rule_priority>},
    {"tproxy.capture_dns", restart, member_differs<&config::tproxy, &tproxy_config::capture_dns>},
    {"control.socket", restart, member_differs<&config::control, &control_config::socket>},
    {"log.level", live, member_differs<&config::log, &log_config::level>},
    {"log.format", live, member_differs<&config::log, &log_config::format>},
};

std::vector<std::string> collect(const config& a, const config& b, bool only_restart) {
  std::vector<std::string> keys;
  for (const auto& info : key_table) {
    if ((!only_restart || !info.live) && info.differs(a, b)) {
      keys.emplace_back(info.key);
    }
  }
  return keys;
}

}  // namespace

std::vector<std::string> keys_needing_restart(const config& running, const config& loaded) {
  return collect(running, loaded, true);
}

std::vector<std::string> changed_keys(const config& running, const config& loaded) {
  return collect(running, loaded, false);
}

}  // namespace gate46
