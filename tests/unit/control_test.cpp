// The control socket's message codec: every request command and every reply alternative byte for
// byte on the wire and back; strings that are not UTF-8 (names from the network) replaced, not
// fatal; the extremes of every number; and every malformed message rejected with a control_error
// that says why (and nothing else escaping).
#include "gate46/common/control.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <ostream>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace gate46::control {
namespace {

using ::testing::HasSubstr;

constexpr auto u64_max = std::numeric_limits<std::uint64_t>::max();
constexpr auto i64_min = std::numeric_limits<std::int64_t>::min();
constexpr auto i64_max = std::numeric_limits<std::int64_t>::max();

// ---- helpers ------------------------------------------------------------------------------------

// The message of the control_error that decoding `text` raises (any other exception fails the
// test through gtest).
std::string request_error_of(std::string_view text) {
  try {
    const auto r = decode_request(text);
    ADD_FAILURE() << "decoded as " << to_string(r.command) << ": " << text;
  } catch (const control_error& e) {
    return e.what();
  }
  return {};
}

std::string reply_error_of(std::string_view text) {
  try {
    const auto r = decode_reply(text);
    ADD_FAILURE() << "decoded as alternative " << r.index() << ": " << text;
  } catch (const control_error& e) {
    return e.what();
  }
  return {};
}

reply round_trip(const reply& r) {
  return decode_reply(encode_reply(r));
}

// A JSON object written out by hand, so the tests do not share the codec's JSON library.
struct field {
  std::string key;
  std::string value;  // JSON text
};
using fields = std::vector<field>;

std::string object_of(const fields& f) {
  std::string out = "{";
  for (const auto& [key, value] : f) {
    if (out.size() > 1) {
      out += ',';
    }
    out.append("\"").append(key).append("\":").append(value);
  }
  return out + "}";
}

fields with(fields f, std::string_view key, std::string_view value) {
  for (auto& [k, v] : f) {
    if (k == key) {
      v = value;
    }
  }
  return f;
}

fields without(fields f, std::string_view key) {
  std::erase_if(f, [&](const field& x) { return x.key == key; });
  return f;
}

fields flow_fields() {
  return {{"component", R"("relay")"},
          {"client", R"("[2001:db8:1::10]:51000")"},
          {"destination", R"("[2001:2::5]:443")"},
          {"name", R"("www.example.com")"},
          {"target", R"("[2001:db8:80::1]:443")"},
          {"bytes_up", "1200"},
          {"bytes_down", "480000"},
          {"age_ms", "2500"}};
}

fields status_fields() {
  return {{"version", R"("0.1.0")"},
          {"pid", "4242"},
          {"user", R"("gate46")"},
          {"config", R"("/etc/gate46/gate46.toml")"},
          {"uptime_seconds", "3600"},
          {"threads", "4"},
          {"components", R"(["dns","socks"])"},
          {"reloads_applied", "2"},
          {"reloads_rejected", "1"}};
}

fields pool_fields() {
  return {{"prefix", R"("198.18.0.0/15")"},
          {"size", "131072"},
          {"used", "12"},
          {"eligible", "3"},
          {"allocation_failures", "0"}};
}

std::string flows_reply(const fields& flow) {
  return R"({"schema":1,"flows":[)" + object_of(flow) + "]}";
}
std::string status_reply_text(const fields& status) {
  return R"({"schema":1,"status":)" + object_of(status) + "}";
}
std::string stats_reply_text(std::string_view groups, std::string_view pools) {
  return R"({"schema":1,"stats":{"groups":)" + std::string{groups} + R"(,"pools":)" + std::string{pools} + "}}";
}
std::string pools_reply(const fields& pool) {
  return stats_reply_text("[]", "[" + object_of(pool) + "]");
}

status_reply sample_status() {
  return {.version = "0.1.0",
          .pid = 4242,
          .user = "gate46",
          .config_path = "/etc/gate46/gate46.toml",
          .uptime_seconds = 3600,
          .threads = 4,
          .components = {"dns", "socks", "relay", "firewall"},
          .reloads_applied = 2,
          .reloads_rejected = 1};
}

// ---- requests -----------------------------------------------------------------------------------

TEST(control_request, command_names) {
  EXPECT_EQ(to_string(command::status), "status");
  EXPECT_EQ(to_string(command::flows), "flows");
  EXPECT_EQ(to_string(command::stats), "stats");
}

TEST(control_request, every_command_on_the_wire_and_back) {
  const std::pair<command, std::string_view> cases[] = {
      {command::status, "{\"schema\":1,\"command\":\"status\"}\n"},
      {command::flows, "{\"schema\":1,\"command\":\"flows\"}\n"},
      {command::stats, "{\"schema\":1,\"command\":\"stats\"}\n"},
  };
  for (const auto& [c, wire] : cases) {
    SCOPED_TRACE(to_string(c));
    const auto line = encode_request(request{c});
    EXPECT_EQ(line, wire);
    EXPECT_EQ(decode_request(line).command, c);
    EXPECT_EQ(decode_request(line), request{c});
  }
}

TEST(control_request, line_with_or_without_its_newline) {
  EXPECT_EQ(decode_request(R"({"schema":1,"command":"flows"})"), request{command::flows});
  EXPECT_EQ(decode_request("{\"schema\":1,\"command\":\"flows\"}\n"), request{command::flows});
}

TEST(control_request, key_order_whitespace_and_unknown_keys_do_not_matter) {
  EXPECT_EQ(decode_request(R"( { "command" : "stats" , "verbose" : true , "schema" : 1 } )"), request{command::stats});
}

TEST(control_request, at_most_max_request_bytes) {
  // Valid JSON padded with whitespace to exactly the limit, then one byte over it.
  const std::string head = R"({"schema":1,"command":"status")";
  const auto padded = [&](std::size_t total) { return head + std::string(total - head.size() - 1, ' ') + "}"; };

  const auto at_limit = padded(max_request_bytes);
  ASSERT_EQ(at_limit.size(), 4096U);
  EXPECT_EQ(decode_request(at_limit), request{command::status});
  EXPECT_EQ(decode_request(at_limit + "\n"), request{command::status});  // the '\n' is framing

  const auto over = padded(max_request_bytes + 1);
  ASSERT_EQ(over.size(), 4097U);
  EXPECT_EQ(request_error_of(over), "message of 4097 bytes (at most 4096)");
  EXPECT_EQ(request_error_of(over + "\n"), "message of 4097 bytes (at most 4096)");
  EXPECT_THAT(request_error_of(std::string(100000, ' ')), HasSubstr("message of 100000 bytes"));
}

struct error_case {
  std::string name;
  std::string text;
  std::string message;  // a substring of what() that says why
};

void PrintTo(const error_case& c, std::ostream* os) {
  *os << c.name;
}

class control_request_errors : public ::testing::TestWithParam<error_case> {};

TEST_P(control_request_errors, say_why) {
  const auto& c = GetParam();
  EXPECT_THAT(request_error_of(c.text), HasSubstr(c.message));
}

constexpr std::string_view wrong_schema = "not control schema 1";

INSTANTIATE_TEST_SUITE_P(
    control, control_request_errors,
    ::testing::Values(
        error_case{"empty", "", "not JSON"}, error_case{"only_newline", "\n", "not JSON"},
        error_case{"bare_word", "status\n", "not JSON"},
        error_case{"truncated", R"({"schema":1,"command":"status")", "not JSON"},
        error_case{"trailing_garbage", R"({"schema":1,"command":"status"} x)", "not JSON"},
        error_case{"two_lines", "{\"schema\":1,\"command\":\"status\"}\n{}\n", "not JSON"},
        error_case{"array", R"([{"schema":1,"command":"status"}])", "not a JSON object"},
        error_case{"string", R"("status")", "not a JSON object"}, error_case{"number", "1", "not a JSON object"},
        error_case{"null", "null", "not a JSON object"},
        error_case{"missing_schema", R"({"command":"status"})", std::string{wrong_schema}},
        error_case{"schema_2", R"({"schema":2,"command":"status"})", std::string{wrong_schema}},
        error_case{"schema_0", R"({"schema":0,"command":"status"})", std::string{wrong_schema}},
        error_case{"schema_negative", R"({"schema":-1,"command":"status"})", std::string{wrong_schema}},
        error_case{"schema_as_string", R"({"schema":"1","command":"status"})", std::string{wrong_schema}},
        error_case{"schema_as_float", R"({"schema":1.0,"command":"status"})", std::string{wrong_schema}},
        error_case{"schema_as_bool", R"({"schema":true,"command":"status"})", std::string{wrong_schema}},
        error_case{"schema_huge", R"({"schema":18446744073709551617,"command":"status"})", std::string{wrong_schema}},
        error_case{"unknown_command", R"({"schema":1,"command":"restart"})",
                   R"(unknown command "restart" (known: status, flows, stats))"},
        error_case{"command_wrong_case", R"({"schema":1,"command":"Status"})", R"(unknown command "Status")"},
        error_case{"command_empty", R"({"schema":1,"command":""})", R"(unknown command "")"},
        error_case{"command_number", R"({"schema":1,"command":0})", R"("command" is not a string)"},
        error_case{"command_array", R"({"schema":1,"command":["status"]})", R"("command" is not a string)"},
        error_case{"command_null", R"({"schema":1,"command":null})", R"("command" is not a string)"},
        error_case{"missing_command", R"({"schema":1})", R"(missing "command")"}),
    [](const ::testing::TestParamInfo<error_case>& param_info) { return param_info.param.name; });

TEST(control_request, schema_error_says_why) {
  EXPECT_EQ(request_error_of(R"({"schema":2,"command":"status"})"),
            "not control schema 1 (gate46d and gate46ctl differ in version?)");
}

// ---- replies: round trips -----------------------------------------------------------------------

TEST(control_reply, error_on_the_wire_and_back) {
  const reply r = error_reply{"no such command"};
  EXPECT_EQ(encode_reply(r), "{\"schema\":1,\"error\":\"no such command\"}\n");
  const auto back = round_trip(r);
  ASSERT_TRUE(std::holds_alternative<error_reply>(back));
  EXPECT_EQ(std::get<error_reply>(back).message, "no such command");
}

TEST(control_reply, error_with_quotes_control_bytes_and_nul_survives) {
  std::string message = "a \"quoted\" \\path\\\nsecond line\t\x01 and a NUL ";
  message += '\0';
  message += " in it";
  const auto wire = encode_reply(error_reply{message});
  EXPECT_EQ(wire.find('\n'), wire.size() - 1);  // the newline in the message is escaped
  EXPECT_EQ(round_trip(error_reply{message}), reply{error_reply{message}});
}

TEST(control_reply, status_on_the_wire_and_back) {
  const auto s = sample_status();
  EXPECT_EQ(encode_reply(s),
            "{\"schema\":1,\"status\":{\"version\":\"0.1.0\",\"pid\":4242,\"user\":\"gate46\","
            "\"config\":\"/etc/gate46/gate46.toml\",\"uptime_seconds\":3600,\"threads\":4,"
            "\"components\":[\"dns\",\"socks\",\"relay\",\"firewall\"],\"reloads_applied\":2,"
            "\"reloads_rejected\":1}}\n");
  const auto back = round_trip(s);
  ASSERT_TRUE(std::holds_alternative<status_reply>(back));
  const auto& got = std::get<status_reply>(back);
  EXPECT_EQ(got.version, "0.1.0");
  EXPECT_EQ(got.pid, 4242);
  EXPECT_EQ(got.user, "gate46");
  EXPECT_EQ(got.config_path, "/etc/gate46/gate46.toml");
  EXPECT_EQ(got.uptime_seconds, 3600U);
  EXPECT_EQ(got.threads, 4U);
  EXPECT_EQ(got.components, (std::vector<std::string>{"dns", "socks", "relay", "firewall"}));
  EXPECT_EQ(got.reloads_applied, 2U);
  EXPECT_EQ(got.reloads_rejected, 1U);
  EXPECT_EQ(got, s);
}

TEST(control_reply, status_with_no_components) {
  auto s = sample_status();
  s.components.clear();
  EXPECT_EQ(round_trip(s), reply{s});
}

TEST(control_reply, status_decoded_whatever_the_key_order_and_with_unknown_keys) {
  const auto text = R"({"status":{"reloads_rejected":1,"reloads_applied":2,"components":["dns","socks"],)"
                    R"("threads":4,"uptime_seconds":3600,"config":"/etc/gate46/gate46.toml","user":"gate46",)"
                    R"("pid":4242,"version":"0.1.0","future_key":[1,2,3]},"schema":1})";
  auto expected = sample_status();
  expected.components = {"dns", "socks"};
  EXPECT_EQ(decode_reply(text), reply{expected});
}

TEST(control_reply, flows_several_entries_and_a_name_that_is_not_utf8) {
  const std::vector<flow_entry> flows = {
      {"relay", "[2001:db8:1::10]:51000", "[2001:2::5]:443", "www.example.com", "[2001:db8:80::1]:443", 1200, 480000,
       2500},
      {"socks", "192.0.2.10:40000", "198.51.100.7:22", "", "198.51.100.7:22", 0, 0, 0},
      // A DNS name is bytes: latin-1 'é' (0xE9), two bytes that start no UTF-8 sequence, and a
      // sequence cut short at the end.
      {"relay", "192.0.2.11:40001", "198.18.0.9:80", "caf\xe9.example\xff\xfe.\xc3", "203.0.113.80:80", 1, 2, 3},
      // UTF-8 is kept as it is.
      {"socks", "192.0.2.12:40002",
       "b\xc3\xbc"
       "cher.example:443",
       "b\xc3\xbc"
       "cher.example",
       "203.0.113.81:443", 4, 5, 6},
  };
  const auto wire = encode_reply(flows);
  EXPECT_THAT(wire, HasSubstr("{\"schema\":1,\"flows\":[{\"component\":\"relay\",\"client\":\"[2001:db8:1::10]:51000\","
                              "\"destination\":\"[2001:2::5]:443\",\"name\":\"www.example.com\","
                              "\"target\":\"[2001:db8:80::1]:443\",\"bytes_up\":1200,\"bytes_down\":480000,"
                              "\"age_ms\":2500},"));

  const auto back = decode_reply(wire);
  ASSERT_TRUE(std::holds_alternative<std::vector<flow_entry>>(back));
  const auto& got = std::get<std::vector<flow_entry>>(back);
  ASSERT_EQ(got.size(), 4U);
  EXPECT_EQ(got[0], flows[0]);
  EXPECT_EQ(got[1], flows[1]);
  EXPECT_EQ(got[1].name, "");
  EXPECT_EQ(got[3], flows[3]);
  // Every invalid byte becomes U+FFFD (EF BF BD); the rest of the entry is intact.
  constexpr std::string_view fffd = "\xef\xbf\xbd";
  EXPECT_EQ(got[2].name,
            "caf" + std::string{fffd} + ".example" + std::string{fffd} + std::string{fffd} + "." + std::string{fffd});
  auto expected = flows[2];
  expected.name = got[2].name;
  EXPECT_EQ(got[2], expected);
  // The replaced reply is now valid and encodes to itself.
  EXPECT_EQ(encode_reply(back), encode_reply(decode_reply(encode_reply(back))));
  EXPECT_EQ(round_trip(back), back);
}

TEST(control_reply, no_flows) {
  const auto back = round_trip(std::vector<flow_entry>{});
  EXPECT_EQ(encode_reply(std::vector<flow_entry>{}), "{\"schema\":1,\"flows\":[]}\n");
  ASSERT_TRUE(std::holds_alternative<std::vector<flow_entry>>(back));
  EXPECT_TRUE(std::get<std::vector<flow_entry>>(back).empty());
}

TEST(control_reply, stats_with_groups_and_pools) {
  const stats_reply s{.groups = {{"daemon", {{"reloads_applied", 2}, {"reloads_rejected", 0}}},
                                 // Not in alphabetical order: the order is kept.
                                 {"dns", {{"queries", 1000}, {"answers_fake", 800}, {"refused", 3}, {"a_last", 1}}},
                                 {"firewall", {}}},
                      .pools = {{"198.18.0.0/15", 131072, 12, 3, 0}, {"2001:2::/48", u64_max, 40000, 39000, 7}}};
  EXPECT_EQ(encode_reply(s),
            "{\"schema\":1,\"stats\":{\"groups\":["
            "{\"owner\":\"daemon\",\"counters\":{\"reloads_applied\":2,\"reloads_rejected\":0}},"
            "{\"owner\":\"dns\",\"counters\":{\"queries\":1000,\"answers_fake\":800,\"refused\":3,\"a_last\":1}},"
            "{\"owner\":\"firewall\",\"counters\":{}}],"
            "\"pools\":[{\"prefix\":\"198.18.0.0/15\",\"size\":131072,\"used\":12,\"eligible\":3,"
            "\"allocation_failures\":0},"
            "{\"prefix\":\"2001:2::/48\",\"size\":18446744073709551615,\"used\":40000,\"eligible\":39000,"
            "\"allocation_failures\":7}]}}\n");
  const auto back = round_trip(s);
  ASSERT_TRUE(std::holds_alternative<stats_reply>(back));
  const auto& got = std::get<stats_reply>(back);
  ASSERT_EQ(got.groups.size(), 3U);
  EXPECT_EQ(got.groups[1].owner, "dns");
  EXPECT_EQ(got.groups[1].counters,
            (std::vector<counter>{{"queries", 1000}, {"answers_fake", 800}, {"refused", 3}, {"a_last", 1}}));
  EXPECT_TRUE(got.groups[2].counters.empty());
  ASSERT_EQ(got.pools.size(), 2U);
  EXPECT_EQ(got.pools[1], (pool_pressure{"2001:2::/48", u64_max, 40000, 39000, 7}));
  EXPECT_EQ(got, s);
}

TEST(control_reply, stats_without_a_store) {
  const stats_reply s{.groups = {{"daemon", {{"reloads_applied", 0}}}}, .pools = {}};
  EXPECT_EQ(round_trip(s), reply{s});
  EXPECT_EQ(round_trip(stats_reply{}), reply{stats_reply{}});
}

TEST(control_reply, largest_numbers_survive) {
  auto s = sample_status();
  s.pid = i64_max;
  s.uptime_seconds = u64_max;
  s.threads = u64_max;
  s.reloads_applied = u64_max;
  s.reloads_rejected = u64_max - 1;
  EXPECT_THAT(encode_reply(s), HasSubstr("\"uptime_seconds\":18446744073709551615,"));
  EXPECT_EQ(round_trip(s), reply{s});
  s.pid = i64_min;
  EXPECT_EQ(round_trip(s), reply{s});

  const std::vector<flow_entry> flows = {{"relay", "a", "b", "c", "d", u64_max, u64_max, u64_max}};
  EXPECT_EQ(round_trip(flows), reply{flows});

  const stats_reply stats{.groups = {{"dns", {{"queries", u64_max}}}},
                          .pools = {{"2001:2::/48", u64_max, u64_max, u64_max, u64_max}}};
  EXPECT_EQ(round_trip(stats), reply{stats});

  // And written by hand: 2^64 - 1 is a count.
  const auto decoded = decode_reply(flows_reply(with(flow_fields(), "bytes_up", "18446744073709551615")));
  EXPECT_EQ(std::get<std::vector<flow_entry>>(decoded).at(0).bytes_up, u64_max);
}

TEST(control_reply, error_is_looked_at_first) {
  // "error" is looked at first: an error reply is never mistaken for an empty answer.
  const auto r = decode_reply(R"({"schema":1,"error":"busy","flows":[]})");
  EXPECT_EQ(r, reply{error_reply{"busy"}});
}

TEST(control_reply, at_most_max_reply_bytes) {
  const std::string head = R"({"schema":1,"error":"x")";
  std::string text = head + std::string(max_reply_bytes - head.size() - 1, ' ') + "}";
  ASSERT_EQ(text.size(), max_reply_bytes);
  EXPECT_EQ(decode_reply(text), reply{error_reply{"x"}});
  text.insert(text.begin(), ' ');
  EXPECT_EQ(reply_error_of(text), "message of " + std::to_string(max_reply_bytes + 1) + " bytes (at most " +
                                      std::to_string(max_reply_bytes) + ")");
}

// ---- replies: rejections ------------------------------------------------------------------------

class control_reply_errors : public ::testing::TestWithParam<error_case> {};

TEST_P(control_reply_errors, say_why) {
  const auto& c = GetParam();
  EXPECT_THAT(reply_error_of(c.text), HasSubstr(c.message));
}

INSTANTIATE_TEST_SUITE_P(
    control, control_reply_errors,
    ::testing::Values(
        error_case{"empty", "", "not JSON"}, error_case{"not_json", "gate46d: no such command", "not JSON"},
        error_case{"truncated", R"({"schema":1,"flows":[)", "not JSON"},
        error_case{"invalid_utf8_in_a_string", "{\"schema\":1,\"error\":\"caf\xe9\"}", "not JSON"},
        error_case{"lone_surrogate", R"({"schema":1,"error":"\ud800"})", "not JSON"},
        error_case{"array", "[]", "not a JSON object"},
        error_case{"missing_schema", R"({"error":"x"})", std::string{wrong_schema}},
        error_case{"schema_2", R"({"schema":2,"error":"x"})", std::string{wrong_schema}},
        error_case{"schema_as_string", R"({"schema":"1","error":"x"})", std::string{wrong_schema}},
        error_case{"no_alternative", R"({"schema":1})", "a reply with neither status, flows, stats nor error"},
        error_case{"unknown_alternative", R"({"schema":1,"result":{}})",
                   "a reply with neither status, flows, stats nor error"},
        error_case{"error_not_a_string", R"({"schema":1,"error":{"message":"x"}})", R"("error" is not a string)"},
        // status
        error_case{"status_not_an_object", R"({"schema":1,"status":[]})", R"(expected an object around "version")"},
        error_case{"status_null", R"({"schema":1,"status":null})", R"(expected an object around "version")"},
        error_case{"status_missing_version", status_reply_text(without(status_fields(), "version")),
                   R"(missing "version")"},
        error_case{"status_missing_reloads_rejected", status_reply_text(without(status_fields(), "reloads_rejected")),
                   R"(missing "reloads_rejected")"},
        error_case{"status_version_a_number", status_reply_text(with(status_fields(), "version", "1")),
                   R"("version" is not a string)"},
        error_case{"status_pid_float", status_reply_text(with(status_fields(), "pid", "4242.0")),
                   R"("pid" is not a process id)"},
        error_case{"status_pid_string", status_reply_text(with(status_fields(), "pid", R"("4242")")),
                   R"("pid" is not a process id)"},
        error_case{"status_threads_negative", status_reply_text(with(status_fields(), "threads", "-4")),
                   R"("threads" is not a count)"},
        error_case{"status_uptime_float", status_reply_text(with(status_fields(), "uptime_seconds", "3600.5")),
                   R"("uptime_seconds" is not a count)"},
        error_case{"status_uptime_string", status_reply_text(with(status_fields(), "uptime_seconds", R"("3600")")),
                   R"("uptime_seconds" is not a count)"},
        error_case{"status_components_not_an_array",
                   status_reply_text(with(status_fields(), "components", R"("dns,socks")")),
                   R"("components" is not an array)"},
        error_case{"status_component_not_a_string",
                   status_reply_text(with(status_fields(), "components", R"(["dns",1])")),
                   "a component name is not a string"},
        // flows
        error_case{"flows_not_an_array", R"({"schema":1,"flows":{}})", R"("flows" is not an array)"},
        error_case{"flow_not_an_object", R"({"schema":1,"flows":["relay"]})",
                   R"(expected an object around "component")"},
        error_case{"flow_name_null", flows_reply(with(flow_fields(), "name", "null")), R"("name" is not a string)"},
        error_case{"flow_bytes_up_negative", flows_reply(with(flow_fields(), "bytes_up", "-1")),
                   R"("bytes_up" is not a count)"},
        error_case{"flow_bytes_down_min_int64", flows_reply(with(flow_fields(), "bytes_down", "-9223372036854775808")),
                   R"("bytes_down" is not a count)"},
        error_case{"flow_bytes_up_float", flows_reply(with(flow_fields(), "bytes_up", "1.0")),
                   R"("bytes_up" is not a count)"},
        error_case{"flow_bytes_up_exponent", flows_reply(with(flow_fields(), "bytes_up", "1e3")),
                   R"("bytes_up" is not a count)"},
        error_case{"flow_bytes_up_2_to_the_64", flows_reply(with(flow_fields(), "bytes_up", "18446744073709551616")),
                   R"("bytes_up" is not a count)"},
        error_case{"flow_age_string", flows_reply(with(flow_fields(), "age_ms", R"("2500")")),
                   R"("age_ms" is not a count)"},
        error_case{"flow_age_bool", flows_reply(with(flow_fields(), "age_ms", "true")), R"("age_ms" is not a count)"},
        // stats
        error_case{"stats_not_an_object", R"({"schema":1,"stats":[]})", R"(expected an object around "groups")"},
        error_case{"stats_missing_groups", R"({"schema":1,"stats":{"pools":[]}})", R"(missing "groups")"},
        error_case{"stats_missing_pools", R"({"schema":1,"stats":{"groups":[]}})", R"(missing "pools")"},
        error_case{"stats_groups_not_an_array", stats_reply_text("{}", "[]"), R"("groups" is not an array)"},
        error_case{"group_missing_owner", stats_reply_text(R"([{"counters":{}}])", "[]"), R"(missing "owner")"},
        error_case{"group_missing_counters", stats_reply_text(R"([{"owner":"dns"}])", "[]"), R"(missing "counters")"},
        error_case{"group_counters_an_array", stats_reply_text(R"([{"owner":"dns","counters":[]}])", "[]"),
                   R"("counters" is not an object)"},
        error_case{"counter_negative", stats_reply_text(R"([{"owner":"dns","counters":{"queries":-5}}])", "[]"),
                   R"(counter "queries" is not a count)"},
        error_case{"counter_float", stats_reply_text(R"([{"owner":"dns","counters":{"queries":2.5}}])", "[]"),
                   R"(counter "queries" is not a count)"},
        error_case{"counter_string", stats_reply_text(R"([{"owner":"dns","counters":{"queries":"5"}}])", "[]"),
                   R"(counter "queries" is not a count)"},
        error_case{"pool_size_negative", pools_reply(with(pool_fields(), "size", "-1")), R"("size" is not a count)"},
        error_case{"pool_used_float", pools_reply(with(pool_fields(), "used", "12.0")), R"("used" is not a count)"},
        error_case{"pool_missing_prefix", pools_reply(without(pool_fields(), "prefix")), R"(missing "prefix")"},
        error_case{"pool_missing_allocation_failures", pools_reply(without(pool_fields(), "allocation_failures")),
                   R"(missing "allocation_failures")"}),
    [](const ::testing::TestParamInfo<error_case>& param_info) { return param_info.param.name; });

TEST(control_reply, every_missing_flow_key_is_named) {
  ASSERT_NO_THROW((void)decode_reply(flows_reply(flow_fields())));
  for (const auto& f : flow_fields()) {
    SCOPED_TRACE(f.key);
    EXPECT_EQ(reply_error_of(flows_reply(without(flow_fields(), f.key))), "missing \"" + f.key + "\"");
  }
}

TEST(control_reply, every_missing_status_key_is_named) {
  ASSERT_NO_THROW((void)decode_reply(status_reply_text(status_fields())));
  for (const auto& f : status_fields()) {
    SCOPED_TRACE(f.key);
    EXPECT_EQ(reply_error_of(status_reply_text(without(status_fields(), f.key))), "missing \"" + f.key + "\"");
  }
}

TEST(control_reply, every_count_rejects_negatives_floats_and_strings) {
  const std::string_view not_counts[] = {"-1", "1.0", "1.5", "1e3", R"("1")", "true", "null", "[1]"};
  const std::string_view flow_counts[] = {"bytes_up", "bytes_down", "age_ms"};
  for (const auto key : flow_counts) {
    for (const auto value : not_counts) {
      SCOPED_TRACE(std::string{key} + "=" + std::string{value});
      EXPECT_EQ(reply_error_of(flows_reply(with(flow_fields(), key, value))),
                "\"" + std::string{key} + "\" is not a count");
    }
  }
  const std::string_view status_counts[] = {"uptime_seconds", "threads", "reloads_applied", "reloads_rejected"};
  for (const auto key : status_counts) {
    for (const auto value : not_counts) {
      SCOPED_TRACE(std::string{key} + "=" + std::string{value});
      EXPECT_EQ(reply_error_of(status_reply_text(with(status_fields(), key, value))),
                "\"" + std::string{key} + "\" is not a count");
    }
  }
  const std::string_view pool_counts[] = {"size", "used", "eligible", "allocation_failures"};
  for (const auto key : pool_counts) {
    for (const auto value : not_counts) {
      SCOPED_TRACE(std::string{key} + "=" + std::string{value});
      EXPECT_EQ(reply_error_of(pools_reply(with(pool_fields(), key, value))),
                "\"" + std::string{key} + "\" is not a count");
    }
  }
}

TEST(control_reply, zero_is_a_count_and_negative_pids_are_kept) {
  const auto flows = decode_reply(flows_reply(with(with(flow_fields(), "bytes_up", "0"), "bytes_down", "-0")));
  EXPECT_EQ(std::get<std::vector<flow_entry>>(flows).at(0).bytes_up, 0U);
  EXPECT_EQ(std::get<std::vector<flow_entry>>(flows).at(0).bytes_down, 0U);
  const auto status = decode_reply(status_reply_text(with(status_fields(), "pid", "-9223372036854775808")));
  EXPECT_EQ(std::get<status_reply>(status).pid, i64_min);
}

// A pid beyond int64 (2^63, 2^64-1) is out of range, as the header promises for numbers; it must
// not come back as a negative pid.
TEST(control_reply, pid_beyond_int64_is_rejected) {
  EXPECT_EQ(reply_error_of(status_reply_text(with(status_fields(), "pid", "9223372036854775808"))),
            R"("pid" is not a process id)");
  EXPECT_EQ(reply_error_of(status_reply_text(with(status_fields(), "pid", "18446744073709551615"))),
            R"("pid" is not a process id)");
}

TEST(control_reply, deep_nesting_is_an_error_not_a_crash) {
  // 200,000 nested arrays where a status object belongs (deeper than a recursive parser or
  // destructor could go on an 8 MiB stack): refused at the ninth level, before memory is spent.
  constexpr std::size_t depth = 200000;
  const std::string deep = R"({"schema":1,"status":)" + std::string(depth, '[') + std::string(depth, ']') + "}";
  EXPECT_EQ(reply_error_of(deep), "nested deeper than 8 levels");
  EXPECT_EQ(reply_error_of(R"({"schema":1,"status":)" + std::string(depth, '[')), "nested deeper than 8 levels");
}

}  // namespace
}  // namespace gate46::control
