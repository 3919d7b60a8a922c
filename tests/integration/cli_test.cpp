// The two ways to validate a configuration file — `gate46d --check-config` and
// `gate46ctl config check` — on a valid file, on the shipped example, and on each kind of
// broken file: exit status, which stream, and the exact "FILE:LINE:COL: KEY: MESSAGE".
// No namespace and no root needed: neither tool touches the network.
#include <algorithm>
#include <array>
#include <cctype>
#include <filesystem>
#include <ostream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

#include <gtest/gtest.h>

#include "gate46/testing/process.hpp"
#include "gate46/testing/temp_dir.hpp"

namespace {

using namespace gate46::testing;

// One way of checking a file, and how it reports an invalid one on stderr.
struct checker {
  std::string_view name;
  std::array<std::string_view, 3> command;  // the file's path is appended
  std::string_view error_prefix;            // before "FILE:LINE:COL: ..."
};

void PrintTo(const checker& c, std::ostream* os) {
  *os << c.name;
}

constexpr checker gate46d_check{"gate46d", {GATE46D_PATH, "--check-config", "--config"}, "gate46d: "};
constexpr checker gate46ctl_check{"gate46ctl", {GATE46CTL_PATH, "config", "check"}, ""};

command_result check(const checker& tool, const std::filesystem::path& file) {
  std::vector<std::string> argv{tool.command.begin(), tool.command.end()};
  argv.push_back(file.string());
  return run_command(argv, 10s);
}

// A valid file; every broken case below changes exactly one of its lines.
std::string valid_config(const temp_dir& dir) {
  return "# gate46 test configuration\n"
         "[daemon]\n"
         "threads = 2\n"
         "\n"
         "[lan]\n"
         "interfaces = [\"lan0\"]\n"
         "networks = [\"192.0.2.0/24\"]\n"
         "\n"
         "[dns]\n"
         "upstreams = [\"192.0.2.53\"]\n"
         "mode = \"translate\"\n"
         "\n"
         "[store]\n"
         "path = \"" +
         (dir / "mappings.mdb").string() +
         "\"\n"
         "\n"
         "[pools]\n"
         "key_file = \"" +
         (dir / "pool.key").string() +
         "\"\n"
         "\n"
         "[control]\n"
         "socket = \"" +
         (dir / "control.sock").string() + "\"\n";
}

// `text` with the line `from` replaced by `to` (which may be empty, or several lines).
std::string replace_line(const std::string& text, std::string_view from, std::string_view to) {
  const auto at = text.find(std::string{from} + '\n');
  if (at == std::string::npos || (at != 0 && text[at - 1] != '\n')) {
    throw std::invalid_argument{"no line \"" + std::string{from} + "\" in the test configuration"};
  }
  const auto rest = text.substr(at + from.size() + 1);
  return text.substr(0, at) + (to.empty() ? "" : std::string{to} + '\n') + rest;
}

// The 1-based number of the first line that equals `line`.
unsigned line_number(const std::string& text, std::string_view line) {
  unsigned number = 1;
  std::size_t start = 0;
  while (start < text.size()) {
    const auto end = std::min(text.find('\n', start), text.size());
    if (std::string_view{text}.substr(start, end - start) == line) {
      return number;
    }
    ++number;
    start = end + 1;
  }
  throw std::invalid_argument{"no line \"" + std::string{line} + "\" in the test configuration"};
}

struct broken_case {
  std::string_view name;
  std::string_view line;         // the valid file's line to replace
  std::string_view replacement;  // what replaces it ("" deletes it)
  std::string_view blamed_line;  // the line the error must point at (after the replacement)
  // What follows "FILE:LINE:COL: ": "KEY: MESSAGE" exactly, or for a syntax error (which names
  // no key) the start of toml++'s message.
  std::string_view message;
  bool message_is_prefix = false;
};

void PrintTo(const broken_case& c, std::ostream* os) {
  *os << c.name;
}

constexpr broken_case broken_cases[] = {
    {"syntax_error", "threads = 2", "threads = = 2", "threads = = 2", "Error while parsing", true},
    {"unknown_key", "threads = 2", "thread = 2", "thread = 2", "daemon.thread: unknown key"},
    {"wrong_type", "threads = 2", "threads = \"2\"", "threads = \"2\"",
     "daemon.threads: expected an integer, got a string"},
    {"out_of_range", "threads = 2", "threads = 0", "threads = 0", "daemon.threads: value 0 is out of range [1, 256]"},
    // A missing key is blamed on the table it is missing from.
    {"missing_required_key", "networks = [\"192.0.2.0/24\"]", "", "[lan]", "lan.networks: required key is missing"},
    {"cidr_with_host_bits", "networks = [\"192.0.2.0/24\"]", "networks = [\"192.0.2.1/24\"]",
     "networks = [\"192.0.2.1/24\"]", "lan.networks[0]: \"192.0.2.1/24\": host bits set beyond the prefix length"},
    {"bad_enum_value", "mode = \"translate\"", "mode = \"bogus\"", "mode = \"bogus\"",
     "dns.mode: \"bogus\" is not one of: translate, all"},
};

// Splits "FILE:LINE:COL: REST\n" after the given "FILE:LINE:" prefix; returns REST, or a
// description of what did not match (which then fails the comparison with the expectation).
std::string rest_after_position(const std::string& err, const std::string& position_prefix) {
  if (!err.starts_with(position_prefix)) {
    return "<stderr does not start with \"" + position_prefix + "\">";
  }
  auto i = position_prefix.size();
  const auto digits_start = i;
  while (i < err.size() && std::isdigit(static_cast<unsigned char>(err[i])) != 0) {
    ++i;
  }
  if (i == digits_start || err.compare(i, 2, ": ") != 0 || !err.ends_with('\n')) {
    return "<no \"COL: \" after \"" + position_prefix + "\", or no final newline>";
  }
  return err.substr(i + 2, err.size() - i - 3);
}

class config_check : public ::testing::TestWithParam<std::tuple<checker, broken_case>> {
 protected:
  temp_dir dir_{"gate46-cli"};
};

TEST_P(config_check, reports_file_line_and_key) {
  const auto& [tool, c] = GetParam();
  const auto text = replace_line(valid_config(dir_), c.line, c.replacement);
  const auto file = dir_.write_file("gate46.toml", text);
  const auto line = line_number(text, c.blamed_line);

  const auto result = check(tool, file);

  ASSERT_FALSE(result.timed_out);
  EXPECT_EQ(result.status, 1) << result.err;
  EXPECT_EQ(result.out, "");
  const auto rest = rest_after_position(
      result.err, std::string{tool.error_prefix} + file.string() + ':' + std::to_string(line) + ':');
  if (c.message_is_prefix) {
    EXPECT_TRUE(rest.starts_with(c.message)) << "stderr: " << result.err;
    EXPECT_EQ(rest.find('\n'), std::string::npos) << "one line expected: " << result.err;
    // A syntax error names no key.
    EXPECT_EQ(rest.find("daemon.threads"), std::string::npos) << result.err;
  } else {
    EXPECT_EQ(rest, c.message) << "stderr: " << result.err;
  }
}

INSTANTIATE_TEST_SUITE_P(broken_files, config_check,
                         ::testing::Combine(::testing::Values(gate46d_check, gate46ctl_check),
                                            ::testing::ValuesIn(broken_cases)),
                         [](const auto& test) {
                           return std::string{std::get<0>(test.param).name} + "_" +
                                  std::string{std::get<1>(test.param).name};
                         });

class config_check_tool : public ::testing::TestWithParam<checker> {
 protected:
  temp_dir dir_{"gate46-cli"};
};

TEST_P(config_check_tool, accepts_a_valid_file) {
  const auto file = dir_.write_file("gate46.toml", valid_config(dir_));
  const auto result = check(GetParam(), file);
  ASSERT_FALSE(result.timed_out);
  EXPECT_EQ(result.status, 0) << result.err;
  EXPECT_EQ(result.out, file.string() + ": configuration is valid\n");
  EXPECT_EQ(result.err, "");
}

TEST_P(config_check_tool, accepts_the_shipped_example) {
  const auto file = std::filesystem::path{GATE46_SOURCE_DIR} / "deploy/gate46.toml.example";
  ASSERT_TRUE(std::filesystem::exists(file)) << file;
  const auto result = check(GetParam(), file);
  ASSERT_FALSE(result.timed_out);
  EXPECT_EQ(result.status, 0) << result.err;
  EXPECT_EQ(result.out, file.string() + ": configuration is valid\n");
  EXPECT_EQ(result.err, "");
}

TEST_P(config_check_tool, rejects_a_missing_file) {
  const auto file = dir_ / "absent.toml";
  const auto result = check(GetParam(), file);
  ASSERT_FALSE(result.timed_out);
  EXPECT_EQ(result.status, 1);
  EXPECT_EQ(result.out, "");
  EXPECT_TRUE(result.err.starts_with(std::string{GetParam().error_prefix} + file.string() + ':')) << result.err;
  EXPECT_NE(result.err.find("cannot read the file"), std::string::npos) << result.err;
}

INSTANTIATE_TEST_SUITE_P(tools, config_check_tool, ::testing::Values(gate46d_check, gate46ctl_check),
                         [](const auto& test) { return std::string{test.param.name}; });

}  // namespace
