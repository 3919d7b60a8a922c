#include "gate46/common/control.hpp"

#include <limits>
#include <new>

#include <nlohmann/json.hpp>

namespace gate46::control {
namespace {

using json = nlohmann::ordered_json;

constexpr std::string_view command_names[] = {"status", "flows", "stats"};
constexpr int max_depth = 8;

// Strings that came from the network (DNS names, SOCKS targets) may hold bytes that are not
// UTF-8; they are replaced rather than failing the whole reply.
std::string dump(const json& j) {
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

json parse(std::string_view text, std::size_t limit) {
  if (text.size() > limit) {
    throw control_error{"message of " + std::to_string(text.size()) + " bytes (at most " + std::to_string(limit) + ")"};
  }
  // Real messages nest four deep; a hostile one of nothing but '[' must not cost gigabytes.
  const json::parser_callback_t shallow = [](int depth, json::parse_event_t, json&) {
    if (depth > max_depth) {
      throw control_error{"nested deeper than " + std::to_string(max_depth) + " levels"};
    }
    return true;
  };
  json j;
  try {
    j = json::parse(text.begin(), text.end(), shallow, /*allow_exceptions=*/false);
  } catch (const std::bad_alloc&) {
    throw control_error{"message too large to hold"};
  }
  if (j.is_discarded()) {
    throw control_error{"not JSON"};
  }
  if (!j.is_object()) {
    throw control_error{"not a JSON object"};
  }
  const auto version = j.find("schema");
  if (version == j.end() || !version->is_number_integer() || version->get<std::int64_t>() != schema) {
    throw control_error{"not control schema " + std::to_string(schema) + " (gate46d and gate46ctl differ in version?)"};
  }
  return j;
}

const json& member(const json& object, std::string_view key) {
  if (!object.is_object()) {
    throw control_error{"expected an object around \"" + std::string{key} + "\""};
  }
  const auto it = object.find(key);
  if (it == object.end()) {
    throw control_error{"missing \"" + std::string{key} + "\""};
  }
  return *it;
}

std::string text_of(const json& object, std::string_view key) {
  const auto& v = member(object, key);
  if (!v.is_string()) {
    throw control_error{"\"" + std::string{key} + "\" is not a string"};
  }
  return v.get<std::string>();
}

std::uint64_t count_of(const json& object, std::string_view key) {
  const auto& v = member(object, key);
  if (!v.is_number_unsigned() && !(v.is_number_integer() && v.get<std::int64_t>() >= 0)) {
    throw control_error{"\"" + std::string{key} + "\" is not a count"};
  }
  return v.get<std::uint64_t>();
}

const json& array_of(const json& object, std::string_view key) {
  const auto& v = member(object, key);
  if (!v.is_array()) {
    throw control_error{"\"" + std::string{key} + "\" is not an array"};
  }
  return v;
}

json counters_json(const std::vector<counter>& counters) {
  auto out = json::object();
  for (const auto& c : counters) {
    out[c.name] = c.value;
  }
  return out;
}

std::vector<counter> counters_of(const json& object) {
  if (!object.is_object()) {
    throw control_error{"\"counters\" is not an object"};
  }
  std::vector<counter> out;
  for (const auto& [name, value] : object.items()) {
    if (!value.is_number_unsigned() && !(value.is_number_integer() && value.get<std::int64_t>() >= 0)) {
      throw control_error{"counter \"" + name + "\" is not a count"};
    }
    out.push_back({name, value.get<std::uint64_t>()});
  }
  return out;
}

struct reply_encoder {
  json& out;
  void operator()(const error_reply& e) const { out["error"] = e.message; }
  void operator()(const status_reply& s) const {
    out["status"] = json{{"version", s.version},
                         {"pid", s.pid},
                         {"user", s.user},
                         {"config", s.config_path},
                         {"uptime_seconds", s.uptime_seconds},
                         {"threads", s.threads},
                         {"components", s.components},
                         {"reloads_applied", s.reloads_applied},
                         {"reloads_rejected", s.reloads_rejected}};
  }
  void operator()(const std::vector<flow_entry>& flows) const {
    auto list = json::array();
    for (const auto& f : flows) {
      list.push_back(json{{"component", f.component},
                          {"client", f.client},
                          {"destination", f.destination},
                          {"name", f.name},
                          {"target", f.target},
                          {"bytes_up", f.bytes_up},
                          {"bytes_down", f.bytes_down},
                          {"age_ms", f.age_ms}});
    }
    out["flows"] = std::move(list);
  }
  void operator()(const stats_reply& s) const {
    auto groups = json::array();
    for (const auto& g : s.groups) {
      groups.push_back(json{{"owner", g.owner}, {"counters", counters_json(g.counters)}});
    }
    auto pools = json::array();
    for (const auto& p : s.pools) {
      pools.push_back(json{{"prefix", p.prefix},
                           {"size", p.size},
                           {"used", p.used},
                           {"eligible", p.eligible},
                           {"allocation_failures", p.allocation_failures}});
    }
    out["stats"] = json{{"groups", std::move(groups)}, {"pools", std::move(pools)}};
  }
};

status_reply status_of(const json& j) {
  status_reply s;
  s.version = text_of(j, "version");
  const auto& pid = member(j, "pid");
  if (!pid.is_number_integer() ||
      (pid.is_number_unsigned() && pid.get<std::uint64_t>() > std::numeric_limits<std::int64_t>::max())) {
    throw control_error{"\"pid\" is not a process id"};
  }
  s.pid = pid.get<std::int64_t>();
  s.user = text_of(j, "user");
  s.config_path = text_of(j, "config");
  s.uptime_seconds = count_of(j, "uptime_seconds");
  s.threads = count_of(j, "threads");
  for (const auto& c : array_of(j, "components")) {
    if (!c.is_string()) {
      throw control_error{"a component name is not a string"};
    }
    s.components.push_back(c.get<std::string>());
  }
  s.reloads_applied = count_of(j, "reloads_applied");
  s.reloads_rejected = count_of(j, "reloads_rejected");
  return s;
}

std::vector<flow_entry> flows_of(const json& list) {
  if (!list.is_array()) {
    throw control_error{"\"flows\" is not an array"};
  }
  std::vector<flow_entry> flows;
  flows.reserve(list.size());
  for (const auto& f : list) {
    flows.push_back({text_of(f, "component"), text_of(f, "client"), text_of(f, "destination"), text_of(f, "name"),
                     text_of(f, "target"), count_of(f, "bytes_up"), count_of(f, "bytes_down"), count_of(f, "age_ms")});
  }
  return flows;
}

stats_reply stats_of(const json& j) {
  stats_reply s;
  for (const auto& g : array_of(j, "groups")) {
    s.groups.push_back({text_of(g, "owner"), counters_of(member(g, "counters"))});
  }
  for (const auto& p : array_of(j, "pools")) {
    s.pools.push_back({text_of(p, "prefix"), count_of(p, "size"), count_of(p, "used"), count_of(p, "eligible"),
                       count_of(p, "allocation_failures")});
  }
  return s;
}

}  // namespace

std::string_view to_string(command c) noexcept {
  return command_names[static_cast<std::size_t>(c)];
}

std::string encode_request(const request& r) {
  return dump(json{{"schema", schema}, {"command", to_string(r.command)}}) + '\n';
}

request decode_request(std::string_view line) {
  if (!line.empty() && line.back() == '\n') {
    line.remove_suffix(1);
  }
  const auto j = parse(line, max_request_bytes);
  const auto word = text_of(j, "command");
  for (std::size_t i = 0; i < std::size(command_names); ++i) {
    if (word == command_names[i]) {
      return request{static_cast<command>(i)};
    }
  }
  // Quoted as JSON: whatever the client sent comes back escaped.
  throw control_error{"unknown command " + dump(json(word)) + " (known: status, flows, stats)"};
}

std::string encode_reply(const reply& r) {
  json out{{"schema", schema}};
  std::visit(reply_encoder{out}, r);
  return dump(out) + '\n';
}

reply decode_reply(std::string_view text) {
  const auto j = parse(text, max_reply_bytes);
  if (j.contains("error")) {
    return error_reply{text_of(j, "error")};
  }
  if (j.contains("status")) {
    return status_of(member(j, "status"));
  }
  if (j.contains("flows")) {
    return flows_of(member(j, "flows"));
  }
  if (j.contains("stats")) {
    return stats_of(member(j, "stats"));
  }
  throw control_error{"a reply with neither status, flows, stats nor error"};
}

}  // namespace gate46::control
