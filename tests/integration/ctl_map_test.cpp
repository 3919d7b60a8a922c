// gate46ctl map and gate46ctl keygen: the real binary against a real store in a temporary
// directory, made by the binary itself (keygen, map add) or by store_writer, a second process
// that opens the store as gate46d does and keeps writing it while gate46ctl reads.
//
// Every check looks at the exit status and at stdout (JSON parsed field by field, or the table
// by column); failures also at the message on stderr. No network, no namespace.
#include <grp.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <chrono>
#include <ctime>
#include <filesystem>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "gate46/common/address.hpp"
#include "gate46/testing/process.hpp"
#include "gate46/testing/temp_dir.hpp"
#include "gate46/testing/wait.hpp"

namespace {

using namespace gate46::testing;
using json = nlohmann::json;
namespace fs = std::filesystem;
using time_point = std::chrono::system_clock::time_point;

// gate46ctl's exit statuses (ctl/exit_status.hpp): the numbers are the interface under test.
constexpr int exit_usage = 1;
constexpr int exit_config = 2;
constexpr int exit_not_found = 3;
constexpr int exit_outside_pools = 4;
constexpr int exit_store_unavailable = 5;
constexpr int exit_refused = 6;
constexpr int exit_conflict = 7;

gate46::cidr cidr_of(std::string_view text) {
  return *gate46::cidr::parse(text);
}

// The store (and the key) get group gate46 when that group exists: only root or a member can
// do that.
bool can_create_gate46_files() {
  if (::geteuid() == 0) {
    return true;
  }
  std::vector<char> buffer(4096);
  group entry{};
  group* found = nullptr;
  if (::getgrnam_r("gate46", &entry, buffer.data(), buffer.size(), &found) != 0 || found == nullptr) {
    return true;
  }
  std::vector<gid_t> groups(static_cast<std::size_t>(std::max(::getgroups(0, nullptr), 0)));
  groups.resize(static_cast<std::size_t>(std::max(::getgroups(static_cast<int>(groups.size()), groups.data()), 0)));
  return std::find(groups.begin(), groups.end(), found->gr_gid) != groups.end();
}

// "2024-05-01T10:00:00.123Z" (the only form gate46ctl writes), or nullopt.
std::optional<time_point> parse_rfc3339(const json& value) {
  if (!value.is_string()) {
    return std::nullopt;
  }
  const auto text = value.get<std::string>();
  constexpr std::string_view form = "dddd-dd-ddTdd:dd:dd.dddZ";
  if (text.size() != form.size()) {
    return std::nullopt;
  }
  for (std::size_t i = 0; i < form.size(); ++i) {
    if (form[i] == 'd' ? std::isdigit(static_cast<unsigned char>(text[i])) == 0 : text[i] != form[i]) {
      return std::nullopt;
    }
  }
  // Every field is all digits at a fixed place.
  const auto field = [&](std::size_t at, std::size_t length) {
    int number = 0;
    std::from_chars(text.data() + at, text.data() + at + length, number);
    return number;
  };
  std::tm tm{};
  tm.tm_year = field(0, 4) - 1900;
  tm.tm_mon = field(5, 2) - 1;
  tm.tm_mday = field(8, 2);
  tm.tm_hour = field(11, 2);
  tm.tm_min = field(14, 2);
  tm.tm_sec = field(17, 2);
  return std::chrono::system_clock::from_time_t(::timegm(&tm)) + std::chrono::milliseconds{field(20, 3)};
}

std::chrono::seconds seconds_between(time_point from, time_point to) {
  return std::chrono::duration_cast<std::chrono::seconds>(to - from);
}

bool in(const gate46::cidr& pool, const json& address) {
  if (!address.is_string()) {
    return false;
  }
  const auto parsed = gate46::ip_address::parse(address.get<std::string>());
  return parsed && pool.contains(*parsed);
}

// The names in a {"mappings": [...]} document, in order.
std::vector<std::string> names_of(const json& list) {
  std::vector<std::string> names;
  if (list.contains("mappings") && list["mappings"].is_array()) {
    for (const auto& m : list["mappings"]) {
      names.push_back(m.value("name", "<no name>"));
    }
  }
  return names;
}

// The mapping named `name` in a {"mappings": [...]} document, or null.
json find_in(const json& list, std::string_view name) {
  if (list.contains("mappings") && list["mappings"].is_array()) {
    for (const auto& m : list["mappings"]) {
      if (m.value("name", "") == name) {
        return m;
      }
    }
  }
  return nullptr;
}

// The whitespace-separated words of the first line of `text` whose first word is `first`
// (empty if there is none): lines of the people's output, independent of column widths.
std::vector<std::string> line_starting(const std::string& text, std::string_view first) {
  std::istringstream lines{text};
  for (std::string line; std::getline(lines, line);) {
    std::istringstream in_line{line};
    std::vector<std::string> words;
    for (std::string word; in_line >> word;) {
      words.push_back(word);
    }
    if (!words.empty() && words.front() == first) {
      return words;
    }
  }
  return {};
}

// One line a store_writer reported: "allocated NAME V4 V6".
struct reported {
  std::string name;
  std::string v4;
  std::string v6;
};

// The complete "allocated" lines of a store_writer log so far.
std::vector<reported> allocations_in(const std::string& log) {
  std::vector<reported> out;
  std::istringstream lines{log.substr(0, log.rfind('\n') == std::string::npos ? 0 : log.rfind('\n') + 1)};
  std::string line;
  while (std::getline(lines, line)) {
    std::istringstream words{line};
    std::string verb;
    reported r;
    if (words >> verb >> r.name >> r.v4 >> r.v6 && verb == "allocated") {
      out.push_back(r);
    }
  }
  return out;
}

class ctl_map : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!can_create_gate46_files()) {
      GTEST_SKIP() << "the group gate46 exists: creating a store for it needs root or membership";
    }
    config_ = write_config("gate46.toml");
  }

  [[nodiscard]] fs::path store_path() const { return dir_ / "store" / "mappings.mdb"; }
  [[nodiscard]] fs::path key_path() const { return dir_ / "pool.key"; }

  // A configuration for the test's store and key; `pools` adds lines to [pools].
  [[nodiscard]] fs::path write_config(std::string_view file, std::string_view pools = "") const {
    return dir_.write_file(file,
                           "[lan]\n"
                           "interfaces = [\"lan0\"]\n"
                           "networks = [\"192.0.2.0/24\"]\n"
                           "\n"
                           "[dns]\n"
                           "upstreams = [\"192.0.2.53\"]\n"
                           "\n"
                           "[store]\n"
                           "path = \"" +
                               store_path().string() +
                               "\"\n"
                               "map_size = 16777216\n"
                               "\n"
                               "[pools]\n"
                               "key_file = \"" +
                               key_path().string() + "\"\n" + std::string{pools} + "\n");
  }

  // gate46ctl --config CONFIG args...
  static command_result ctl_with(const fs::path& config, const std::vector<std::string>& args) {
    std::vector<std::string> argv{GATE46CTL_PATH, "--config", config.string()};
    argv.insert(argv.end(), args.begin(), args.end());
    return run_command(argv, 10s);
  }
  [[nodiscard]] command_result ctl(const std::vector<std::string>& args) const { return ctl_with(config_, args); }

  // gate46ctl args... that must succeed; returns stdout.
  std::string ctl_ok(const std::vector<std::string>& args, const fs::path& config = {}) const {
    const auto result = ctl_with(config.empty() ? config_ : config, args);
    EXPECT_EQ(result.status, 0) << join_argv(args) << ": " << result.err;
    return result.out;
  }
  // gate46ctl args... --json that must succeed; returns the parsed document (null if not JSON).
  json ctl_json(std::vector<std::string> args, const fs::path& config = {}) const {
    args.emplace_back("--json");
    const auto out = ctl_ok(args, config);
    auto parsed = json::parse(out, nullptr, false);
    EXPECT_FALSE(parsed.is_discarded()) << join_argv(args) << " printed no JSON: " << out;
    EXPECT_EQ(parsed.value("schema", 0), 1) << out;
    return parsed.is_discarded() ? json{} : parsed;
  }

  void keygen() const { ctl_ok({"keygen"}); }

  temp_dir dir_{"gate46-ctl-map"};
  fs::path config_;
};

// ---- keygen ---------------------------------------------------------------------------------

TEST_F(ctl_map, keygen_writes_a_16_byte_key_and_refuses_to_replace_it) {
  const auto made = ctl({"keygen"});
  ASSERT_EQ(made.status, 0) << made.err;
  EXPECT_EQ(made.out, "wrote a new pool key to " + key_path().string() + "\n");
  ASSERT_EQ(fs::file_size(key_path()), 16U);
  const auto first = read_file(key_path());
  EXPECT_EQ(fs::status(key_path()).permissions() & fs::perms::others_all, fs::perms::none);

  const auto again = ctl({"keygen"});
  EXPECT_EQ(again.status, exit_refused);
  EXPECT_NE(again.err.find("--force"), std::string::npos) << again.err;
  EXPECT_EQ(read_file(key_path()), first) << "a refused keygen changed the key";

  const auto forced = ctl({"keygen", "--force"});
  EXPECT_EQ(forced.status, 0) << forced.err;
  ASSERT_EQ(fs::file_size(key_path()), 16U);
  EXPECT_NE(read_file(key_path()), first) << "--force kept the old key";
}

TEST_F(ctl_map, keygen_writes_where_key_file_says) {
  const auto elsewhere = dir_ / "other.key";
  const auto made = ctl({"keygen", "--key-file", elsewhere.string()});
  ASSERT_EQ(made.status, 0) << made.err;
  EXPECT_EQ(fs::file_size(elsewhere), 16U);
  EXPECT_FALSE(fs::exists(key_path())) << "keygen --key-file also wrote pools.key_file";
}

// ---- add, get, list -------------------------------------------------------------------------

TEST_F(ctl_map, add_then_get_by_name_and_by_either_address) {
  keygen();
  const auto before = std::chrono::system_clock::now() - 1s;
  const auto added = ctl({"map", "add", "WWW.Example.COM"});
  ASSERT_EQ(added.status, 0) << added.err;
  EXPECT_TRUE(added.out.starts_with("name")) << added.out;
  EXPECT_NE(added.out.find("www.example.com."), std::string::npos) << added.out;

  const auto got = ctl_json({"map", "get", "www.example.com"});
  ASSERT_TRUE(got.contains("mapping")) << got;
  const auto& m = got["mapping"];
  EXPECT_EQ(m.value("name", ""), "www.example.com.");
  EXPECT_TRUE(in(cidr_of("198.18.0.0/15"), m["v4"])) << m["v4"];
  EXPECT_TRUE(in(cidr_of("2001:2::/48"), m["v6"])) << m["v6"];
  const auto created = parse_rfc3339(m["created"]);
  const auto last_used = parse_rfc3339(m["last_used"]);
  const auto expiry = parse_rfc3339(m["expiry"]);
  ASSERT_TRUE(created && last_used && expiry) << m;
  EXPECT_GE(*created, before);
  EXPECT_LE(*created, std::chrono::system_clock::now());
  EXPECT_EQ(*last_used, *created);
  // map add leases for pools.lease_grace (3600 s by default).
  EXPECT_EQ(seconds_between(*last_used, *expiry), 3600s);
  EXPECT_TRUE(m["held_until"].is_null()) << m;
  EXPECT_EQ(m["held"], false);
  EXPECT_EQ(m["pinned"], false);
  EXPECT_EQ(m["eligible"], false);

  // The same mapping by its fake IPv4 and IPv6 address, and as text for people.
  for (const auto& address : {m["v4"].get<std::string>(), m["v6"].get<std::string>()}) {
    const auto by_address = ctl_json({"map", "get", address});
    EXPECT_EQ(by_address["mapping"], m) << address;
  }
  const auto text = ctl_ok({"map", "get", m["v6"].get<std::string>()});
  EXPECT_TRUE(text.starts_with("name ")) << text;
  using words = std::vector<std::string>;
  EXPECT_EQ(line_starting(text, "name"), (words{"name", "www.example.com."})) << text;
  EXPECT_EQ(line_starting(text, "v4"), (words{"v4", m["v4"].get<std::string>()})) << text;
  EXPECT_EQ(line_starting(text, "v6"), (words{"v6", m["v6"].get<std::string>()})) << text;
  EXPECT_EQ(line_starting(text, "pinned"), (words{"pinned", "no"})) << text;
  EXPECT_EQ(line_starting(text, "held"), (words{"held", "no"})) << text;
}

TEST_F(ctl_map, add_with_addresses_and_pin_needs_no_key) {
  // No keygen: given addresses are not placed, so no key is needed.
  const auto added = ctl({"map", "add", "pinned.example", "--v4", "198.18.0.7", "--v6", "2001:2::7", "--pin"});
  ASSERT_EQ(added.status, 0) << added.err;
  const auto m = ctl_json({"map", "get", "pinned.example."})["mapping"];
  EXPECT_EQ(m["v4"], "198.18.0.7");
  EXPECT_EQ(m["v6"], "2001:2::7");
  EXPECT_EQ(m["pinned"], true);
  EXPECT_EQ(m["eligible"], false);

  // One family only.
  ASSERT_EQ(ctl({"map", "add", "only4.example", "--v4", "198.18.0.8"}).status, 0);
  const auto only4 = ctl_json({"map", "get", "198.18.0.8"})["mapping"];
  EXPECT_EQ(only4["name"], "only4.example.");
  EXPECT_EQ(only4["v4"], "198.18.0.8");
  EXPECT_TRUE(only4["v6"].is_null()) << only4;
}

TEST_F(ctl_map, list_as_table_and_as_json) {
  keygen();
  ASSERT_EQ(ctl({"map", "add", "b.example", "--pin", "--v4", "198.18.0.7", "--v6", "2001:2::7"}).status, 0);
  ASSERT_EQ(ctl({"map", "add", "a.example"}).status, 0);

  const auto list = ctl_json({"map", "list"});
  EXPECT_EQ(names_of(list), (std::vector<std::string>{"a.example.", "b.example."}));
  const auto a = find_in(list, "a.example.");
  const auto b = find_in(list, "b.example.");
  ASSERT_FALSE(a.is_null() || b.is_null()) << list;
  // Field by field, and the same as map get says.
  EXPECT_EQ(a, ctl_json({"map", "get", "a.example"})["mapping"]);
  EXPECT_TRUE(in(cidr_of("198.18.0.0/15"), a["v4"]));
  EXPECT_TRUE(in(cidr_of("2001:2::/48"), a["v6"]));
  EXPECT_EQ(a["pinned"], false);
  EXPECT_EQ(b["v4"], "198.18.0.7");
  EXPECT_EQ(b["v6"], "2001:2::7");
  EXPECT_EQ(b["pinned"], true);
  EXPECT_EQ(b["held"], false);
  EXPECT_TRUE(b["held_until"].is_null());
  EXPECT_TRUE(parse_rfc3339(b["created"]) && parse_rfc3339(b["last_used"]) && parse_rfc3339(b["expiry"])) << b;
  const std::set<std::string> keys{"name",   "v4",         "v6",   "created", "last_used",
                                   "expiry", "held_until", "held", "pinned",  "eligible"};
  std::set<std::string> found;
  for (const auto& [key, value] : a.items()) {
    found.insert(key);
  }
  EXPECT_EQ(found, keys);

  // The table: a header, then one row per mapping, every column aligned under its heading.
  const auto table = ctl_ok({"map", "list"});
  std::vector<std::string> lines;
  std::istringstream in_table{table};
  for (std::string line; std::getline(in_table, line);) {
    lines.push_back(line);
  }
  ASSERT_EQ(lines.size(), 3U) << table;
  const auto& header = lines[0];
  EXPECT_TRUE(header.starts_with("NAME ")) << header;
  const auto column = [&](std::string_view heading) {
    return header.find(std::string{"  "} + std::string{heading}) + 2;
  };
  const auto v4_column = column("V4");
  const auto v6_column = column("V6");
  const auto expiry_column = column("EXPIRY");
  const auto pinned_column = column("PINNED");
  ASSERT_NE(v4_column, std::string::npos + 2) << header;
  ASSERT_NE(pinned_column, std::string::npos + 2) << header;
  EXPECT_TRUE(lines[1].starts_with("a.example. ")) << lines[1];
  EXPECT_EQ(lines[1].substr(v4_column, a["v4"].get<std::string>().size()), a["v4"]) << table;
  EXPECT_EQ(lines[1].substr(v6_column, a["v6"].get<std::string>().size()), a["v6"]) << table;
  EXPECT_EQ(lines[1].substr(expiry_column, 7), "in 59m ") << table;
  EXPECT_EQ(lines[1].substr(pinned_column), "no") << table;
  EXPECT_TRUE(lines[2].starts_with("b.example. ")) << lines[2];
  EXPECT_EQ(lines[2].substr(v4_column, 11), "198.18.0.7 ") << table;
  EXPECT_EQ(lines[2].substr(v6_column, 10), "2001:2::7 ") << table;
  EXPECT_EQ(lines[2].substr(expiry_column, 6), "never ") << table;
  EXPECT_EQ(lines[2].substr(pinned_column), "yes") << table;
}

TEST_F(ctl_map, list_filters_by_name_glob_and_pool) {
  keygen();
  for (const auto* name : {"a.example.com", "b.example.com", "c.example.org"}) {
    ASSERT_EQ(ctl({"map", "add", name}).status, 0) << name;
  }
  ASSERT_EQ(ctl({"map", "add", "four.example.net", "--v4", "198.18.1.1"}).status, 0);
  ASSERT_EQ(ctl({"map", "add", "six.example.net", "--v6", "2001:2::1:1"}).status, 0);

  using names = std::vector<std::string>;
  EXPECT_EQ(names_of(ctl_json({"map", "list", "--name", "*.example.com"})),
            (names{"a.example.com.", "b.example.com."}));
  // With or without the final dot, in any case.
  EXPECT_EQ(names_of(ctl_json({"map", "list", "--name", "*.EXAMPLE.com."})),
            (names{"a.example.com.", "b.example.com."}));
  EXPECT_EQ(names_of(ctl_json({"map", "list", "--name", "?.example.*"})),
            (names{"a.example.com.", "b.example.com.", "c.example.org."}));
  EXPECT_EQ(names_of(ctl_json({"map", "list", "--name", "*.org"})), (names{"c.example.org."}));
  EXPECT_EQ(names_of(ctl_json({"map", "list", "--name", "nothing*"})), names{});
  EXPECT_EQ(names_of(ctl_json({"map", "list", "--pool", "v4"})),
            (names{"a.example.com.", "b.example.com.", "c.example.org.", "four.example.net."}));
  EXPECT_EQ(names_of(ctl_json({"map", "list", "--pool", "v6"})),
            (names{"a.example.com.", "b.example.com.", "c.example.org.", "six.example.net."}));
  EXPECT_EQ(names_of(ctl_json({"map", "list", "--pool", "v6", "--name", "*.net"})), (names{"six.example.net."}));
  // Nothing here is eligible for recycling: every lease is fresh.
  EXPECT_EQ(names_of(ctl_json({"map", "list", "--expired"})), names{});

  // The table filters the same way: a header and exactly the matching rows.
  const auto table = ctl_ok({"map", "list", "--pool", "v4", "--name", "*.net"});
  EXPECT_EQ(std::count(table.begin(), table.end(), '\n'), 2) << table;
  EXPECT_NE(table.find("\nfour.example.net. "), std::string::npos) << table;

  EXPECT_EQ(ctl({"map", "list", "--pool", "v5"}).status, exit_usage);
}

// ---- del, pin, flush ------------------------------------------------------------------------

TEST_F(ctl_map, del_by_name_and_by_address) {
  keygen();
  ASSERT_EQ(ctl({"map", "add", "x.example"}).status, 0);
  ASSERT_EQ(ctl({"map", "add", "y.example"}).status, 0);
  const auto y = ctl_json({"map", "get", "y.example"})["mapping"];

  const auto by_name = ctl({"map", "del", "X.example."});
  EXPECT_EQ(by_name.status, 0) << by_name.err;
  EXPECT_EQ(by_name.out, "deleted x.example.\n");
  EXPECT_EQ(ctl({"map", "get", "x.example"}).status, exit_not_found);

  const auto by_address = ctl({"map", "del", y["v6"].get<std::string>()});
  EXPECT_EQ(by_address.status, 0) << by_address.err;
  EXPECT_EQ(by_address.out, "deleted y.example.\n");
  EXPECT_EQ(ctl({"map", "get", "y.example"}).status, exit_not_found);
  EXPECT_EQ(ctl({"map", "get", y["v4"].get<std::string>()}).status, exit_not_found);
  EXPECT_EQ(names_of(ctl_json({"map", "list"})), std::vector<std::string>{});

  EXPECT_EQ(ctl({"map", "del", "x.example"}).status, exit_not_found);
}

TEST_F(ctl_map, pin_and_unpin_by_name_and_by_address) {
  ASSERT_EQ(ctl({"map", "add", "p.example", "--v4", "198.18.0.20"}).status, 0);
  const auto pinned = ctl({"map", "pin", "p.example"});
  EXPECT_EQ(pinned.status, 0) << pinned.err;
  EXPECT_EQ(pinned.out, "pinned p.example.\n");
  EXPECT_EQ(ctl_json({"map", "get", "p.example"})["mapping"]["pinned"], true);
  EXPECT_EQ(ctl_json({"map", "stats"})["pools"]["v4"]["pinned"], 1);

  const auto unpinned = ctl({"map", "unpin", "198.18.0.20"});
  EXPECT_EQ(unpinned.status, 0) << unpinned.err;
  EXPECT_EQ(unpinned.out, "unpinned p.example.\n");
  EXPECT_EQ(ctl_json({"map", "get", "p.example"})["mapping"]["pinned"], false);
  EXPECT_EQ(ctl_json({"map", "stats"})["pools"]["v4"]["pinned"], 0);

  EXPECT_EQ(ctl({"map", "pin", "nobody.example"}).status, exit_not_found);
  EXPECT_EQ(ctl({"map", "unpin", "198.18.0.21"}).status, exit_not_found);
}

TEST_F(ctl_map, flush_expired_then_all_but_pinned) {
  keygen();
  // Two configurations of one store: the second leases for 0 s, so what it adds is eligible
  // for recycling at once.
  const auto no_grace = write_config("no-grace.toml", "lease_grace = 0");
  ASSERT_EQ(ctl({"map", "add", "fresh.example"}).status, 0);
  ASSERT_EQ(ctl({"map", "add", "kept.example", "--pin"}).status, 0);
  ASSERT_EQ(ctl_with(no_grace, {"map", "add", "old1.example"}).status, 0);
  ASSERT_EQ(ctl_with(no_grace, {"map", "add", "old2.example"}).status, 0);

  using names = std::vector<std::string>;
  EXPECT_EQ(names_of(ctl_json({"map", "list", "--expired"})), (names{"old1.example.", "old2.example."}));
  EXPECT_EQ(ctl_json({"map", "get", "old1.example"})["mapping"]["eligible"], true);

  const auto expired = ctl({"map", "flush", "--expired"});
  EXPECT_EQ(expired.status, 0) << expired.err;
  EXPECT_TRUE(expired.out.starts_with("flushed 2 mappings")) << expired.out;
  EXPECT_EQ(names_of(ctl_json({"map", "list"})), (names{"fresh.example.", "kept.example."}));

  const auto all = ctl({"map", "flush"});
  EXPECT_EQ(all.status, 0) << all.err;
  EXPECT_TRUE(all.out.starts_with("flushed 1 mapping ")) << all.out;
  EXPECT_EQ(names_of(ctl_json({"map", "list"})), (names{"kept.example."}));
}

// ---- stats ----------------------------------------------------------------------------------

TEST_F(ctl_map, stats_after_known_operations) {
  keygen();
  const auto no_grace = write_config("no-grace.toml", "lease_grace = 0");
  ASSERT_EQ(ctl({"map", "add", "a.example"}).status, 0);
  ASSERT_EQ(ctl({"map", "add", "b.example"}).status, 0);
  ASSERT_EQ(ctl({"map", "add", "c.example", "--v4", "198.18.0.9", "--pin"}).status, 0);
  ASSERT_EQ(ctl_with(no_grace, {"map", "add", "d.example"}).status, 0);
  // b's lease has not passed: its two addresses wait in quarantine.
  ASSERT_EQ(ctl({"map", "del", "b.example"}).status, 0);

  const auto stats = ctl_json({"map", "stats"});
  EXPECT_EQ(stats.value("mappings", -1), 3) << stats;  // a, c, d
  EXPECT_EQ(stats.value("quarantined", -1), 2) << stats;
  EXPECT_EQ(stats.value("map_size", 0ULL), 16777216ULL) << stats;
  EXPECT_GT(stats.value("bytes_on_disk", 0ULL), 0ULL) << stats;
  EXPECT_LE(stats.value("bytes_on_disk", 0ULL), 16777216ULL) << stats;
  const auto& v4 = stats["pools"]["v4"];
  EXPECT_EQ(v4["prefix"], "198.18.0.0/15");
  EXPECT_EQ(v4["size"], 131070);  // /15 without its first and last address
  EXPECT_EQ(v4["used"], 3);       // a, c, d
  EXPECT_EQ(v4["pinned"], 1);     // c
  EXPECT_EQ(v4["eligible"], 1);   // d
  EXPECT_EQ(v4["recycled"], 0);
  EXPECT_EQ(v4["allocation_failures"], 0);
  const auto& v6 = stats["pools"]["v6"];
  EXPECT_EQ(v6["prefix"], "2001:2::/48");
  EXPECT_EQ(v6["size"], 18446744073709551615ULL);  // 2^80, saturated
  EXPECT_EQ(v6["used"], 2);                        // a, d
  EXPECT_EQ(v6["pinned"], 0);
  EXPECT_EQ(v6["eligible"], 1);
  EXPECT_EQ(v6["recycled"], 0);
  EXPECT_EQ(v6["allocation_failures"], 0);

  // For people: the exact sizes.
  const auto table = ctl_ok({"map", "stats"});
  using words = std::vector<std::string>;
  EXPECT_EQ(line_starting(table, "v4"), (words{"v4", "198.18.0.0/15", "131070", "3", "1", "1", "0", "0"})) << table;
  EXPECT_EQ(line_starting(table, "v6"), (words{"v6", "2001:2::/48", "2^80", "2", "0", "1", "0", "0"})) << table;
  EXPECT_EQ(line_starting(table, "mappings"), (words{"mappings", "3"})) << table;
  EXPECT_EQ(line_starting(table, "quarantined"), (words{"quarantined", "2", "addresses"})) << table;
}

TEST_F(ctl_map, stats_count_recycling_and_allocation_failures) {
  keygen();
  // A two-address IPv4 pool, leases of 0 s: full after two names, and what is in it is
  // eligible at once.
  const auto small = write_config("small.toml", "ipv4 = \"198.18.0.0/31\"\nlease_grace = 0");
  for (const auto* name : {"r1.example", "r2.example", "r3.example"}) {
    ASSERT_EQ(ctl_with(small, {"map", "add", name}).status, 0) << name;
  }
  // r3 took the address of the least recently used of r1 and r2, which keeps its IPv6 one.
  auto list = ctl_json({"map", "list"}, small);
  EXPECT_EQ(names_of(ctl_json({"map", "list", "--pool", "v4"}, small)).size(), 2U) << list;
  EXPECT_TRUE(in(cidr_of("198.18.0.0/31"), find_in(list, "r3.example.")["v4"])) << list;
  EXPECT_EQ(names_of(ctl_json({"map", "list", "--pool", "v6"}, small)).size(), 3U) << list;
  EXPECT_EQ(ctl_json({"map", "stats"}, small)["pools"]["v4"]["recycled"], 1);

  // The DNS path (allocate, with a 60 s answer TTL) recycles the other two, then finds nothing
  // eligible: the third allocation fails and is counted.
  process writer{{STORE_WRITER_PATH, small.string(), "allocate", (dir_ / "stop").string(), "3"}};
  ASSERT_TRUE(writer.wait_for_log("done 3\n", 10s)) << writer.log_text();
  EXPECT_NE(writer.log_text().find("failed w2.writer.test. v4 "), std::string::npos) << writer.log_text();

  const auto stats = ctl_json({"map", "stats"}, small);
  const auto& v4 = stats["pools"]["v4"];
  EXPECT_EQ(v4["size"], 2);
  EXPECT_EQ(v4["used"], 2);
  EXPECT_EQ(v4["eligible"], 0);
  EXPECT_EQ(v4["recycled"], 3);
  EXPECT_EQ(v4["allocation_failures"], 1);
  EXPECT_EQ(stats["pools"]["v6"]["recycled"], 0);
  EXPECT_EQ(stats["pools"]["v6"]["allocation_failures"], 0);
  EXPECT_EQ(stats.value("mappings", -1), 6);

  // Nothing left to recycle: map add fails with "pool exhausted".
  const auto exhausted = ctl_with(small, {"map", "add", "r4.example"});
  EXPECT_EQ(exhausted.status, exit_conflict) << exhausted.err;
  EXPECT_NE(exhausted.err.find("pool is full"), std::string::npos) << exhausted.err;
}

// ---- exit statuses --------------------------------------------------------------------------

TEST_F(ctl_map, unknown_name_or_address_is_exit_3) {
  ASSERT_EQ(ctl({"map", "add", "known.example", "--v4", "198.18.0.10"}).status, 0);
  for (const auto& args : std::vector<std::vector<std::string>>{{"map", "get", "unknown.example"},
                                                                {"map", "get", "198.18.0.11"},
                                                                {"map", "get", "2001:2::11"},
                                                                {"map", "del", "unknown.example"},
                                                                {"map", "pin", "198.18.0.11"}}) {
    const auto result = ctl(args);
    EXPECT_EQ(result.status, exit_not_found) << join_argv(args) << ": " << result.err;
    EXPECT_EQ(result.out, "");
    EXPECT_NE(result.err.find("no mapping for "), std::string::npos) << result.err;
  }
}

TEST_F(ctl_map, address_outside_the_pools_is_exit_4) {
  ASSERT_EQ(ctl({"map", "add", "known.example", "--v4", "198.18.0.10"}).status, 0);
  for (const auto& args : std::vector<std::vector<std::string>>{
           {"map", "get", "192.0.2.1"},
           {"map", "get", "198.18.0.0"},  // the pool's network address is never handed out
           {"map", "get", "2001:db8::1"},
           {"map", "del", "192.0.2.1"},
           {"map", "unpin", "2001:db8::1"},
           {"map", "add", "new.example", "--v4", "192.0.2.1"},
           {"map", "add", "new.example", "--v6", "2001:db8::1"}}) {
    const auto result = ctl(args);
    EXPECT_EQ(result.status, exit_outside_pools) << join_argv(args) << ": " << result.err;
    EXPECT_NE(result.err.find("neither fake pool"), std::string::npos) << result.err;
  }
}

TEST_F(ctl_map, missing_store_is_exit_5_and_is_not_created) {
  for (const auto& args : std::vector<std::vector<std::string>>{{"map", "list"},
                                                                {"map", "list", "--json"},
                                                                {"map", "get", "a.example"},
                                                                {"map", "stats"},
                                                                {"map", "del", "a.example"},
                                                                {"map", "pin", "a.example"},
                                                                {"map", "flush"}}) {
    const auto result = ctl(args);
    EXPECT_EQ(result.status, exit_store_unavailable) << join_argv(args) << ": " << result.err;
    EXPECT_EQ(result.out, "");
    EXPECT_NE(result.err.find("no mapping store at " + store_path().string()), std::string::npos) << result.err;
  }
  EXPECT_FALSE(fs::exists(store_path().parent_path())) << "a read-only command created the store";

  // map add creates it.
  EXPECT_EQ(ctl({"map", "add", "a.example", "--v4", "198.18.0.10"}).status, 0);
  EXPECT_TRUE(fs::exists(store_path()));
  EXPECT_EQ(ctl({"map", "list"}).status, 0);
}

TEST_F(ctl_map, unreadable_store_is_exit_5) {
  fs::create_directories(store_path().parent_path());
  dir_.write_file("store/mappings.mdb", std::string(8192, 'x'));
  const auto result = ctl({"map", "list"});
  EXPECT_EQ(result.status, exit_store_unavailable) << result.err;
  EXPECT_NE(result.err.find(store_path().string()), std::string::npos) << result.err;

  fs::remove(store_path());
  fs::create_directories(store_path());  // a directory where the file should be
  EXPECT_EQ(ctl({"map", "stats"}).status, exit_store_unavailable);
}

TEST_F(ctl_map, bad_or_missing_configuration_is_exit_2) {
  // The test configuration with one bad value, on line 10.
  auto text = read_file(config_);
  text.replace(text.find("map_size = 16777216"), 19, "map_size = \"big\"");
  const auto broken = dir_.write_file("broken.toml", text);
  const auto result = ctl_with(broken, {"map", "list"});
  EXPECT_EQ(result.status, exit_config) << result.err;
  EXPECT_EQ(result.out, "");
  EXPECT_TRUE(result.err.starts_with("gate46ctl: " + broken.string() + ":10:")) << result.err;
  EXPECT_NE(result.err.find("store.map_size: "), std::string::npos) << result.err;

  const auto absent = ctl_with(dir_ / "absent.toml", {"map", "list"});
  EXPECT_EQ(absent.status, exit_config) << absent.err;
  EXPECT_EQ(ctl_with(broken, {"keygen"}).status, exit_config);
  EXPECT_FALSE(fs::exists(key_path()));
}

TEST_F(ctl_map, placing_without_a_pool_key_is_exit_2) {
  const auto result = ctl({"map", "add", "a.example"});
  EXPECT_EQ(result.status, exit_config) << result.err;
  EXPECT_NE(result.err.find(key_path().string()), std::string::npos) << result.err;
  EXPECT_NE(result.err.find("keygen"), std::string::npos) << result.err;
  EXPECT_EQ(ctl({"map", "get", "a.example"}).status, exit_not_found) << "the failed add left a mapping";
}

TEST_F(ctl_map, usage_errors_are_exit_1) {
  for (const auto& args : std::vector<std::vector<std::string>>{{"map"},
                                                                {"map", "get"},
                                                                {"map", "frobnicate"},
                                                                {"map", "add", "198.18.0.1"},
                                                                {"map", "add", "a.example", "--v4", "2001:2::1"},
                                                                {"map", "add", "a.example", "--v6", "198.18.0.1"},
                                                                {"map", "get", "bad..name"}}) {
    const auto result = ctl(args);
    EXPECT_EQ(result.status, exit_usage) << join_argv(args) << ": " << result.err;
    EXPECT_FALSE(result.err.empty()) << join_argv(args);
  }
}

TEST_F(ctl_map, address_taken_is_exit_7) {
  ASSERT_EQ(ctl({"map", "add", "first.example", "--v4", "198.18.0.30"}).status, 0);
  const auto result = ctl({"map", "add", "second.example", "--v4", "198.18.0.30"});
  EXPECT_EQ(result.status, exit_conflict) << result.err;
  EXPECT_NE(result.err.find("198.18.0.30 belongs to first.example."), std::string::npos) << result.err;
  EXPECT_EQ(ctl({"map", "get", "second.example"}).status, exit_not_found);
}

TEST_F(ctl_map, held_mapping_is_refused_unless_forced) {
  keygen();
  process writer{{STORE_WRITER_PATH, config_.string(), "hold", "held.example"}};
  ASSERT_TRUE(writer.wait_for_log("held held.example. ", 10s)) << writer.log_text();

  const auto m = ctl_json({"map", "get", "held.example"})["mapping"];
  EXPECT_EQ(m["held"], true) << m;
  const auto held_until = parse_rfc3339(m["held_until"]);
  ASSERT_TRUE(held_until) << m;
  // 2 x pools.hold_refresh (60 s by default) from the hold.
  EXPECT_GT(seconds_between(std::chrono::system_clock::now(), *held_until), 100s);

  const auto refused = ctl({"map", "del", "held.example"});
  EXPECT_EQ(refused.status, exit_refused) << refused.err;
  EXPECT_NE(refused.err.find("--force"), std::string::npos) << refused.err;
  EXPECT_EQ(ctl({"map", "get", "held.example"}).status, 0) << "a refused delete deleted";
  // flush leaves held mappings alone.
  EXPECT_TRUE(ctl_ok({"map", "flush"}).starts_with("flushed 0 mappings"));

  const auto forced = ctl({"map", "del", m["v4"].get<std::string>(), "--force"});
  EXPECT_EQ(forced.status, 0) << forced.err;
  EXPECT_EQ(ctl({"map", "get", "held.example"}).status, exit_not_found);
  // Its addresses stay out of use until the hold passes.
  EXPECT_EQ(ctl_json({"map", "stats"}).value("quarantined", -1), 2);
  const auto reuse = ctl({"map", "add", "other.example", "--v4", m["v4"].get<std::string>()});
  EXPECT_EQ(reuse.status, exit_conflict) << reuse.err;
  EXPECT_TRUE(writer.running());
}

TEST_F(ctl_map, store_option_without_configuration_uses_the_default_pools) {
  if (fs::exists("/etc/gate46/gate46.toml")) {
    GTEST_SKIP() << "/etc/gate46/gate46.toml exists: gate46ctl would read it";
  }
  ASSERT_EQ(ctl({"map", "add", "a.example", "--v4", "198.18.0.40"}).status, 0);
  const auto listed = run_command({GATE46CTL_PATH, "--store", store_path().string(), "map", "list", "--json"});
  ASSERT_EQ(listed.status, 0) << listed.err;
  EXPECT_EQ(names_of(json::parse(listed.out, nullptr, false)), std::vector<std::string>{"a.example."});
  // Global options may also follow the subcommand.
  const auto after = run_command({GATE46CTL_PATH, "map", "get", "198.18.0.40", "--store", store_path().string()});
  EXPECT_EQ(after.status, 0) << after.err;
  const auto none = run_command({GATE46CTL_PATH, "map", "list"});
  EXPECT_EQ(none.status, exit_config) << none.err;
  EXPECT_NE(none.err.find("--store"), std::string::npos) << none.err;
}

// ---- another process writing ------------------------------------------------------------------

TEST_F(ctl_map, sees_every_mapping_another_process_committed_while_it_writes) {
  keygen();
  const auto stop = dir_ / "stop";
  process writer{{STORE_WRITER_PATH, config_.string(), "allocate", stop.string()}};

  // Three looks while the writer keeps allocating: everything it reported before each look
  // must be there, with the addresses it was given.
  for (std::size_t round = 1; round <= 3; ++round) {
    ASSERT_TRUE(wait_until([&] { return allocations_in(writer.log_text()).size() >= 20 * round; }, 10s))
        << writer.log_text();
    const auto reported = allocations_in(writer.log_text());
    const auto list = ctl_json({"map", "list"});
    std::size_t missing = 0;
    for (const auto& r : reported) {
      const auto m = find_in(list, r.name);
      missing += m.is_null() ? 1 : 0;
      EXPECT_FALSE(m.is_null()) << r.name << " reported by the writer is not listed";
      if (!m.is_null()) {
        EXPECT_EQ(m["v4"], r.v4) << r.name;
        EXPECT_EQ(m["v6"], r.v6) << r.name;
      }
    }
    ASSERT_EQ(missing, 0U) << "round " << round;
    const auto& last = reported.back();
    EXPECT_EQ(ctl_json({"map", "get", last.name})["mapping"]["v6"], last.v6);
    EXPECT_EQ(ctl_json({"map", "get", last.v4})["mapping"]["name"], last.name);
    EXPECT_EQ(ctl_json({"map", "get", last.v6})["mapping"]["name"], last.name);
    // Still writing: it has not stopped, and it allocates more after the look.
    EXPECT_EQ(writer.log_text().find("done"), std::string::npos);
    EXPECT_TRUE(writer.running());
  }

  dir_.write_file("stop", "");
  ASSERT_TRUE(writer.wait_for_log("done ", 10s)) << writer.log_text();
  const auto reported = allocations_in(writer.log_text());
  const auto list = ctl_json({"map", "list"});
  EXPECT_EQ(names_of(list).size(), reported.size());
  for (const auto& r : reported) {
    EXPECT_FALSE(find_in(list, r.name).is_null()) << r.name;
  }
  EXPECT_EQ(ctl_json({"map", "stats"}).value("mappings", 0ULL), reported.size());
  EXPECT_NE(writer.log_text().find("done " + std::to_string(reported.size()) + "\n"), std::string::npos)
      << writer.log_text();
}

}  // namespace
