// gate46d's least privilege (issue 9, item 3), read back from the kernel: /proc/PID/status of
// every thread (Uid, Gid, Groups, the five capability sets, NoNewPrivs), the owners and modes
// of what it created, and proof that the two capabilities it keeps still do their jobs after the
// drop: nftables and SO_MARK (CAP_NET_ADMIN), port 53 on an address that appears after the
// start (CAP_NET_BIND_SERVICE).
//
//   client4 ns (IPv4 only)          gw ns (gate46d)                         server ns
//   eth0 192.0.2.2/24     ---  lan0 192.0.2.1/24          up0 203.0.113.1/24  --- eth0 203.0.113.2/24
//   default via 192.0.2.1                                     2001:db8:2::1/64       2001:db8:2::2/64
//   nameserver 192.0.2.1                                                             nginx :80, knotd
//
// Two ways of starting, as on a real box:
//   - by hand as root: gate46d prepares its directories and control socket, then becomes
//     daemon.user (gate46) keeping CAP_NET_ADMIN and CAP_NET_BIND_SERVICE;
//   - the systemd way (User=gate46, AmbientCapabilities=, CapabilityBoundingSet=), mimicked with
//     setpriv(1): gate46d starts as gate46 with ambient capabilities and keeps only those two.
// In /proc/PID/status 0x1400 is CAP_NET_BIND_SERVICE (bit 10) | CAP_NET_ADMIN (bit 12).
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "gate46/common/address.hpp"
#include "gate46/testing/dig.hpp"
#include "gate46/testing/gate46_config.hpp"
#include "gate46/testing/knot.hpp"
#include "gate46/testing/netns.hpp"
#include "gate46/testing/privileges.hpp"
#include "gate46/testing/process.hpp"
#include "gate46/testing/temp_dir.hpp"
#include "gate46/testing/wait.hpp"
#include "gate46/testing/web_server.hpp"

namespace {

using namespace gate46::testing;
using gate46::cidr;
using gate46::ip_address;
using json = nlohmann::json;

constexpr auto log_timeout = 10s;
// drain_timeout (10 s) bounds a stop with flows; without any it is immediate.
constexpr auto exit_timeout = 15s;
constexpr int curl_max_time_s = 10;
constexpr auto curl_timeout = 15s;

// CAP_NET_BIND_SERVICE | CAP_NET_ADMIN, as /proc/PID/status prints a capability set.
constexpr std::string_view kept_caps = "0000000000001400";
constexpr std::string_view no_caps = "0000000000000000";
// What the daemon logs once it has dropped (cap_to_text lists capabilities by number).
constexpr std::string_view kept_caps_text = "capabilities cap_net_bind_service,cap_net_admin=ep";

// The systemd unit's AmbientCapabilities= and CapabilityBoundingSet=, in setpriv's words.
constexpr std::string_view unit_caps = "+net_admin,+net_bind_service";
// More than the unit hands in: what a careless unit or a wrapper might pass on.
constexpr std::string_view extra_caps = "+net_admin,+net_bind_service,+net_raw,+sys_admin,+dac_override,+setuid";

constexpr std::string_view gw_lan_v4 = "192.0.2.1";
constexpr std::string_view gw_up_v6 = "2001:db8:2::1";
constexpr std::string_view server_v4 = "203.0.113.2";
constexpr std::string_view server_v6 = "2001:db8:2::2";

// knotd's zone (gate46d's upstream): a name the IPv4-only client can reach only through gate46.
constexpr std::string_view v6_only = "v6only.gate46.test";  // AAAA 2001:db8:2::2

constexpr std::string_view page = "served to whoever got through\n";

// The user a test names as daemon.user that no system has.
constexpr std::string_view missing_user = "nobody-gate46-test";

// The text of /proc/PID/status (or a task's) as "Key" -> "value" (the text after the tab).
std::map<std::string, std::string> parse_proc_status(const std::string& text) {
  std::map<std::string, std::string> fields;
  for (const auto& line : lines_of(text)) {
    const auto colon = line.find(':');
    if (colon == std::string::npos) {
      continue;
    }
    auto value = line.substr(colon + 1);
    value.erase(0, value.find_first_not_of(" \t"));
    fields[line.substr(0, colon)] = value;
  }
  return fields;
}

std::map<std::string, std::string> proc_status(const std::filesystem::path& file) {
  return parse_proc_status(read_file(file));
}

// `text` as JSON; an empty object (and a failure) if it is not.
json parse_json(const std::string& text) {
  auto j = json::parse(text, nullptr, false);
  if (j.is_discarded()) {
    ADD_FAILURE() << "not JSON: " << text;
    return json::object();
  }
  return j;
}

// The value at `pointer` ("/status/user"), or null when there is none.
json member(const json& j, const std::string& pointer) {
  const json::json_pointer p{pointer};
  return j.contains(p) ? j.at(p) : json{};
}

struct account_ids {
  uid_t uid = 0;
  gid_t gid = 0;
};

account_ids gate46_account() {
  // The tests run on one thread: getpwnam's static buffer is safe here.
  const passwd* p = ::getpwnam("gate46");  // NOLINT(concurrency-mt-unsafe)
  if (p == nullptr) {
    throw std::runtime_error{"no gate46 user"};
  }
  return {p->pw_uid, p->pw_gid};
}

// What a least-privileged gate46d looks like in /proc, thread by thread (capabilities belong to
// threads: a worker started before the drop would keep root's). `bounding`: CapBnd must be the
// two as well (the root start drops it itself; under systemd CapabilityBoundingSet= does).
void expect_least_privilege(pid_t pid, const account_ids& gate46, bool bounding) {
  const auto uid = std::to_string(gate46.uid);
  const auto gid = std::to_string(gate46.gid);
  const std::filesystem::path tasks = "/proc/" + std::to_string(pid) + "/task";
  std::size_t checked = 0;
  std::error_code ec;
  for (const auto& task : std::filesystem::directory_iterator{tasks, ec}) {
    std::map<std::string, std::string> s;
    try {
      s = proc_status(task.path() / "status");
    } catch (const std::system_error&) {
      continue;  // a thread that has just ended
    }
    SCOPED_TRACE("task " + task.path().filename().string() + " (" + s["Name"] + ")");
    EXPECT_EQ(split_words(s["Uid"]), (std::vector<std::string>{uid, uid, uid, uid})) << "real, effective, saved, fs";
    EXPECT_EQ(split_words(s["Gid"]), (std::vector<std::string>{gid, gid, gid, gid}));
    EXPECT_EQ(split_words(s["Groups"]), std::vector<std::string>{gid}) << "gate46's groups only, not root's";
    EXPECT_EQ(s["CapEff"], kept_caps);
    EXPECT_EQ(s["CapPrm"], kept_caps);
    EXPECT_EQ(s["CapInh"], no_caps);
    EXPECT_EQ(s["CapAmb"], no_caps);
    if (bounding) {
      EXPECT_EQ(s["CapBnd"], kept_caps);
    }
    EXPECT_EQ(s["NoNewPrivs"], "1");
    ++checked;
  }
  ASSERT_FALSE(ec) << tasks << ": " << ec.message();
  // daemon.threads = 2: the main thread and two workers at least, all started before the drop
  // had to be reflected in them.
  EXPECT_GE(checked, 3U) << "threads of pid " << pid;
}

struct file_owner {
  uid_t uid = 0;
  gid_t gid = 0;
  mode_t mode = 0;  // permission bits with setgid and friends
  bool socket = false;
  bool directory = false;
};

std::optional<file_owner> owner_of(const std::filesystem::path& path) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) {
    return std::nullopt;
  }
  return file_owner{st.st_uid, st.st_gid, static_cast<mode_t>(st.st_mode & 07777), S_ISSOCK(st.st_mode),
                    S_ISDIR(st.st_mode)};
}

// How a gate46d is started.
struct start_options {
  std::string components;
  std::filesystem::path control_socket;  // --control-socket; empty: control.socket from the file
  // Empty: started by hand as root. Otherwise setpriv's arguments that start it the systemd way.
  std::vector<std::string> setpriv;
};

// setpriv(1) doing what the unit does: User=gate46, Group=gate46 (with its supplementary
// groups), AmbientCapabilities= `ambient`, and, if given, CapabilityBoundingSet= `bounding`.
// --pdeathsig keep: the uid change clears the harness's parent-death signal; put it back, so a
// crashed test binary still takes the daemon with it.
std::vector<std::string> systemd_way(std::string_view ambient, std::string_view bounding) {
  std::vector<std::string> argv{"setpriv",
                                "--reuid=gate46",
                                "--regid=gate46",
                                "--init-groups",
                                "--inh-caps=" + std::string{ambient},
                                "--ambient-caps=" + std::string{ambient},
                                "--pdeathsig=keep"};
  if (!bounding.empty()) {
    argv.push_back("--bounding-set=-all," + std::string{bounding});
  }
  argv.emplace_back("--");
  return argv;
}

class privileges : public ::testing::Test {
 protected:
  void SetUp() override {
    GATE46_SKIP_UNLESS_ROOT();
    ensure_gate46_group();
    gate46_ = gate46_account();
    client4_.emplace("client4");
    gw_.emplace("gw");
    server_.emplace("server");
    connect_veth(*gw_, {"lan0", {"192.0.2.1/24"}}, *client4_, {"eth0", {"192.0.2.2/24"}});
    connect_veth(*gw_, {"up0", {"203.0.113.1/24", "2001:db8:2::1/64"}},  //
                 *server_, {"eth0", {"203.0.113.2/24", "2001:db8:2::2/64"}});
    // The client knows the gateway only as its router and resolver; it has no IPv6 at all.
    client4_->run_checked({"sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1"});
    client4_->run_checked({"sysctl", "-qw", "net.ipv6.conf.eth0.disable_ipv6=1"});
    client4_->run_checked({"ip", "route", "add", "default", "via", std::string{gw_lan_v4}});
    client4_->write_resolv_conf({std::string{gw_lan_v4}});
    // The state directory as a box has it (group gate46, 02770) and its pool key.
    (void)private_state_sections(dir_.path());
  }

  // knotd (gate46d's upstream) and nginx in the server namespace, both families.
  void start_servers() {
    knot_zone zone;
    zone.records = {{"v6only", "AAAA", std::string{server_v6}}};
    knot_.emplace(*server_, knot_options{{std::string{server_v4}, std::string{server_v6}}, 53, zone, false});
    std::filesystem::create_directories(dir_ / "web/www");
    (void)dir_.write_file("web/www/page.txt", page);
    web_.emplace(*server_, dir_ / "web",
                 web_server_options{{std::string{server_v4} + ":80", "[" + std::string{server_v6} + "]:80"}, "", ""},
                 "page.txt");
  }

  // The [store], [pools] and [control] sections: the store and the control socket where given,
  // the pool key that SetUp() wrote.
  [[nodiscard]] std::string state_sections(const std::filesystem::path& store,
                                           const std::filesystem::path& control_socket) const {
    return "\n[store]\npath = \"" + store.string() + "\"\n" +                    //
           "\n[pools]\nkey_file = \"" + (dir_ / "pool.key").string() + "\"\n" +  //
           "\n[control]\nsocket = \"" + control_socket.string() + "\"\n";
  }

  // The configuration every daemon here shares. `state`: state_sections() (default: the store
  // and the control socket in dir_).
  void write_config(const std::string& daemon_extra = "", std::optional<std::string> state = std::nullopt) {
    if (!state) {
      state = state_sections(dir_ / "mappings.mdb", default_socket());
    }
    config_ = dir_.write_file("gate46.toml",
                              "[daemon]\n"
                              "threads = 2\n" +
                                  daemon_extra +
                                  "\n"
                                  "[lan]\n"
                                  "interfaces = [\"lan0\"]\n"
                                  "networks = [\"192.0.2.0/24\"]\n"
                                  "\n"
                                  "[dns]\n"
                                  "upstreams = [\"203.0.113.2\"]\n"
                                  "mode = \"translate\"\n"
                                  "upstream_timeout_ms = 1000\n"
                                  "\n"
                                  "[gateway]\n"
                                  "connect_timeout = 5\n"
                                  "\n"
                                  "[tproxy]\n"
                                  "port = 7046\n" +
                                  *state +
                                  "\n"
                                  "[log]\n"
                                  "level = \"info\"\n");
  }

  [[nodiscard]] std::filesystem::path default_socket() const { return dir_ / "control.sock"; }

  // Starts gate46d in the gateway namespace; `ip netns exec` and setpriv exec in place, so the
  // PID is the daemon's.
  process start(const start_options& o) const {
    std::vector<std::string> argv = o.setpriv;
    argv.insert(argv.end(), {GATE46D_PATH, "--config", config_.string(), "--components", o.components});
    if (!o.control_socket.empty()) {
      argv.insert(argv.end(), {"--control-socket", o.control_socket.string()});
    }
    return process{gw_->command(argv)};
  }

  // Waits for "gate46d running" and the listeners of its components.
  static void expect_running(process& d, std::string_view components) {
    ASSERT_TRUE(d.wait_for_log("gate46d running: components [", log_timeout)) << d.log_text();
    ASSERT_EQ(std::filesystem::read_symlink("/proc/" + std::to_string(d.pid()) + "/exe"),
              std::filesystem::path{GATE46D_PATH});
    if (components.find("dns") != std::string_view::npos) {
      ASSERT_TRUE(d.wait_for_log("serving DNS on 192.0.2.1:53 ", log_timeout)) << d.log_text();
    }
    if (components.find("socks") != std::string_view::npos) {
      ASSERT_TRUE(d.wait_for_log("SOCKS5 on 192.0.2.1:1080", log_timeout)) << d.log_text();
    }
    if (components.find("relay") != std::string_view::npos) {
      ASSERT_TRUE(d.wait_for_log("transparent relay on", log_timeout)) << d.log_text();
    }
    const auto log = d.log_text();
    EXPECT_NE(log.find("running as gate46 (uid " + std::to_string(gate46_account().uid) + "), " +
                       std::string{kept_caps_text} + "\n"),
              std::string::npos)
        << log;
  }

  // SIGTERM and a clean exit.
  static void expect_clean_stop(process& d) {
    const auto mark = d.log_mark();
    ASSERT_TRUE(d.signal(SIGTERM));
    EXPECT_EQ(d.wait_exit(exit_timeout), std::optional<int>{0}) << d.log_text(mark);
    EXPECT_NE(d.log_text(mark).find("gate46d stopped"), std::string::npos) << d.log_text(mark);
  }

  // The control socket: gate46's, group gate46, 0660.
  void expect_control_socket(const std::filesystem::path& path) const {
    const auto o = owner_of(path);
    ASSERT_TRUE(o.has_value()) << path << " missing";
    EXPECT_TRUE(o->socket) << path;
    EXPECT_EQ(o->uid, gate46_.uid) << path;
    EXPECT_EQ(o->gid, gate46_.gid) << path;
    EXPECT_EQ(o->mode, 0660U) << path << std::oct << " mode 0" << o->mode;
  }

  // `gate46ctl status --json` over `socket`, run as `as` (argv prefix, e.g. setpriv) or root.
  static json ctl_status(const std::filesystem::path& socket, const std::vector<std::string>& as = {}) {
    auto argv = as;
    argv.insert(argv.end(), {GATE46CTL_PATH, "status", "--socket", socket.string(), "--json"});
    const auto r = run_command(argv);
    EXPECT_TRUE(r.ok()) << join_argv(argv) << ": " << r.status << " " << r.out << r.err;
    return r.ok() ? parse_json(r.out) : json::object();
  }

  // /proc/self/status of a plain program started with the `prefix` gate46d would get.
  [[nodiscard]] std::map<std::string, std::string> proc_status_of_command(std::vector<std::string> prefix) const {
    prefix.insert(prefix.end(), {"cat", "/proc/self/status"});
    return parse_proc_status(gw_->run_checked(prefix));
  }

  [[nodiscard]] bool table_present() const { return gw_->run({"nft", "list", "table", "inet", "gate46"}).ok(); }
  // The fwmark policy rule of one family ("-4"/"-6"), as `ip rule` prints it.
  [[nodiscard]] bool policy_rule_present(const char* family) const {
    return gw_->run_checked({"ip", family, "rule", "show"}).find("fwmark 0x46/0xff lookup 46") != std::string::npos;
  }

  // A new address on lan0 after the start: the DNS proxy opens port 53 on it, as gate46 with
  // CAP_NET_BIND_SERVICE, and answers there.
  void expect_port_53_on_a_new_address(process& d) const {
    const auto mark = d.log_mark();
    gw_->run_checked({"ip", "address", "add", "192.0.2.3/24", "dev", "lan0"});
    ASSERT_TRUE(d.wait_for_log("serving DNS on 192.0.2.3:53 ", log_timeout, mark)) << d.log_text(mark);
    EXPECT_EQ(d.log_text(mark).find("cannot serve DNS"), std::string::npos) << d.log_text(mark);
    const auto listening = gw_->run_checked({"ss", "-Hlun", "sport", "=", "53"});
    EXPECT_NE(listening.find("192.0.2.3:53 "), std::string::npos) << listening;
  }

  // The A record the client gets for `name` through its resolver (gate46's DNS).
  [[nodiscard]] std::string resolve_a(std::string_view name, std::string_view server = gw_lan_v4) const {
    const auto r =
        client4_->run({"dig", "+short", "+time=5", "+tries=1", "@" + std::string{server}, std::string{name}, "A"}, 15s);
    const auto lines = lines_of(r.out);
    return r.ok() && !lines.empty() ? lines.front() : "";
  }

  [[nodiscard]] static bool in(std::string_view address, const char* range) {
    const auto a = ip_address::parse(address);
    return a && cidr::parse(range)->contains(*a);
  }

  [[nodiscard]] command_result curl(const std::vector<std::string>& args) const {
    std::vector<std::string> argv{"curl", "-sS", "--fail", "--max-time", std::to_string(curl_max_time_s)};
    argv.insert(argv.end(), args.begin(), args.end());
    return client4_->run(argv, curl_timeout);
  }

  temp_dir dir_{"gate46-privileges"};
  std::filesystem::path config_;
  account_ids gate46_;
  std::optional<netns> client4_;
  std::optional<netns> gw_;
  std::optional<netns> server_;
  // After the namespaces: stopped before they go.
  std::optional<knot_server> knot_;
  std::optional<web_server> web_;
};

// ---- 1. started by hand as root ----------------------------------------------------------------

TEST_F(privileges, started_as_root_it_runs_as_gate46_with_two_capabilities_and_still_uses_them) {
  ASSERT_NO_FATAL_FAILURE(start_servers());
  write_config();
  auto d = start({"socks,firewall", {}, {}});
  ASSERT_NO_FATAL_FAILURE(expect_running(d, "socks,firewall"));
  expect_least_privilege(d.pid(), gate46_, /*bounding=*/true);

  // The control socket it bound as root went to gate46 (group gate46, 0660), and it answers.
  expect_control_socket(default_socket());
  const auto status = ctl_status(default_socket());
  EXPECT_EQ(member(status, "/status/user"), "gate46") << status;
  EXPECT_EQ(member(status, "/status/pid"), d.pid()) << status;
  // A member of group gate46 who is neither root nor gate46 may ask too (what the group is for).
  const auto by_member = ctl_status(
      default_socket(), {"setpriv", "--reuid=65534", "--regid=65534", "--groups=" + std::to_string(gate46_.gid), "--"});
  EXPECT_EQ(member(by_member, "/status/pid"), d.pid()) << by_member;

  // CAP_NET_ADMIN after the drop: the firewall component installed the table and the policy
  // routes, and the SOCKS server's upstream socket got its SO_MARK (tproxy.bypass_mark).
  EXPECT_TRUE(table_present()) << d.log_text();
  EXPECT_TRUE(policy_rule_present("-4")) << gw_->run_checked({"ip", "-4", "rule", "show"});
  EXPECT_TRUE(policy_rule_present("-6")) << gw_->run_checked({"ip", "-6", "rule", "show"});
  const auto got = curl({"--socks5-hostname", "192.0.2.1:1080", url(server_v6, "/page.txt")});
  ASSERT_TRUE(got.ok()) << got.status << " " << got.err << d.log_text();
  EXPECT_EQ(got.out, page);
  const auto seen = web_->requests_seen(1);
  ASSERT_EQ(seen.size(), 1U) << web_->access_log();
  EXPECT_EQ(split_words(seen[0]),
            (std::vector<std::string>{std::string{gw_up_v6}, std::string{server_v6}, "/page.txt", "200"}));

  // Still CAP_NET_ADMIN at the stop: the rules go, and the socket with them.
  ASSERT_NO_FATAL_FAILURE(expect_clean_stop(d));
  EXPECT_FALSE(table_present());
  EXPECT_FALSE(policy_rule_present("-4"));
  EXPECT_FALSE(policy_rule_present("-6"));
  EXPECT_FALSE(owner_of(default_socket()).has_value()) << "control socket left behind";
}

// ---- 2. started the systemd way ----------------------------------------------------------------

TEST_F(privileges, started_as_gate46_with_ambient_capabilities_it_binds_port_53_and_applies_rules) {
  ASSERT_NO_FATAL_FAILURE(start_servers());
  write_config();
  auto d = start({"dns,firewall", {}, systemd_way(unit_caps, unit_caps)});
  ASSERT_NO_FATAL_FAILURE(expect_running(d, "dns,firewall"));
  expect_least_privilege(d.pid(), gate46_, /*bounding=*/true);
  expect_control_socket(default_socket());
  EXPECT_EQ(member(ctl_status(default_socket()), "/status/user"), "gate46");

  // Port 53 with a fake answer (the store written as gate46), and port 53 again on an address
  // that comes after the start: CAP_NET_BIND_SERVICE is there for the whole run.
  const auto fake = resolve_a(v6_only);
  EXPECT_TRUE(in(fake, "198.18.0.0/15")) << "A " << v6_only << ": '" << fake << "'\n" << d.log_text();
  ASSERT_NO_FATAL_FAILURE(expect_port_53_on_a_new_address(d));
  EXPECT_EQ(resolve_a(v6_only, "192.0.2.3"), fake) << "the same mapping from the new listener";
  EXPECT_EQ(owner_of(dir_ / "mappings.mdb").value_or(file_owner{}).uid, gate46_.uid);
  EXPECT_TRUE(table_present()) << d.log_text();

  ASSERT_NO_FATAL_FAILURE(expect_clean_stop(d));
  EXPECT_FALSE(table_present());
  EXPECT_FALSE(owner_of(default_socket()).has_value()) << "control socket left behind";
}

TEST_F(privileges, capabilities_handed_in_beyond_the_two_are_given_up_at_start) {
  write_config();
  // The fixture really hands them in: a plain program started the same way holds them all.
  auto handed = proc_status_of_command(systemd_way(extra_caps, ""));
  ASSERT_EQ(handed["CapAmb"], "0000000000203482") << "net_raw, sys_admin, dac_override and setuid as well";
  ASSERT_EQ(handed["CapPrm"], "0000000000203482");

  auto d = start({"dns,socks", {}, systemd_way(extra_caps, "")});
  ASSERT_NO_FATAL_FAILURE(expect_running(d, "dns,socks"));
  // Without CapabilityBoundingSet= the bounding set stays the manager's: not checked here.
  expect_least_privilege(d.pid(), gate46_, /*bounding=*/false);
  ASSERT_NO_FATAL_FAILURE(expect_clean_stop(d));
}

// ---- 3. a daemon.user that does not exist ------------------------------------------------------

TEST_F(privileges, a_missing_daemon_user_stops_the_start_and_leaves_nothing_behind) {
  // NOLINTNEXTLINE(concurrency-mt-unsafe): one thread
  ASSERT_EQ(::getpwnam(std::string{missing_user}.c_str()), nullptr) << missing_user << " exists on this machine";
  // State below directories that do not exist yet: a refused start must not create them.
  const auto state = state_sections(dir_ / "state/mappings.mdb", dir_ / "run/control.sock");
  write_config("user = \"" + std::string{missing_user} + "\"\n", state);
  auto d = start({"dns,socks", {}, {}});
  const auto status = d.wait_exit(exit_timeout);
  ASSERT_TRUE(status.has_value()) << "still running with daemon.user " << missing_user;
  EXPECT_EQ(*status, 1);
  const auto log = d.log_text();
  EXPECT_NE(log.find("daemon.user \"" + std::string{missing_user} + "\" does not exist"), std::string::npos) << log;
  EXPECT_EQ(log.find("gate46d running"), std::string::npos) << log;
  EXPECT_FALSE(std::filesystem::exists(dir_ / "run/control.sock"));
  EXPECT_FALSE(std::filesystem::exists(dir_ / "run"));
  EXPECT_FALSE(std::filesystem::exists(dir_ / "state"));
  // Nor was any port opened on the way: nothing listens in the namespace.
  EXPECT_EQ(gw_->run_checked({"ss", "-Hltun"}), "");

  // The same file with a user that exists starts: daemon.user was the only problem.
  write_config("user = \"gate46\"\n", state);
  auto good = start({"dns,socks", {}, {}});
  ASSERT_NO_FATAL_FAILURE(expect_running(good, "dns,socks"));
  ASSERT_NO_FATAL_FAILURE(expect_clean_stop(good));
}

// ---- 4. DNS and the gateway as two processes sharing the store -------------------------------

TEST_F(privileges, dns_and_gateway_as_two_dropped_processes_share_the_store) {
  ASSERT_NO_FATAL_FAILURE(start_servers());
  write_config();
  const auto dns_socket = dir_ / "dns.sock";
  const auto gw_socket = dir_ / "gateway.sock";
  auto dns = start({"dns", dns_socket, {}});
  ASSERT_NO_FATAL_FAILURE(expect_running(dns, "dns"));
  auto gateway = start({"socks,relay,firewall", gw_socket, {}});
  ASSERT_NO_FATAL_FAILURE(expect_running(gateway, "socks,relay,firewall"));
  {
    SCOPED_TRACE("dns process");
    expect_least_privilege(dns.pid(), gate46_, /*bounding=*/true);
  }
  {
    SCOPED_TRACE("gateway process");
    expect_least_privilege(gateway.pid(), gate46_, /*bounding=*/true);
  }
  expect_control_socket(dns_socket);
  expect_control_socket(gw_socket);
  EXPECT_FALSE(std::filesystem::exists(default_socket())) << "--control-socket replaces control.socket";
  const auto dns_status = ctl_status(dns_socket);
  const auto gw_status = ctl_status(gw_socket);
  EXPECT_EQ(member(dns_status, "/status/pid"), dns.pid()) << dns_status;
  EXPECT_EQ(member(dns_status, "/status/user"), "gate46") << dns_status;
  EXPECT_EQ(member(dns_status, "/status/components"), json::array({"dns"})) << dns_status;
  EXPECT_EQ(member(gw_status, "/status/pid"), gateway.pid()) << gw_status;
  EXPECT_EQ(member(gw_status, "/status/user"), "gate46") << gw_status;
  EXPECT_EQ(member(gw_status, "/status/components"), json::array({"socks", "relay", "firewall"})) << gw_status;

  // The dns process hands out the fake address; the relay process maps it back from the store
  // and reaches the IPv6-only server for the IPv4-only client.
  const auto fake = resolve_a(v6_only);
  ASSERT_TRUE(in(fake, "198.18.0.0/15")) << "A " << v6_only << ": '" << fake << "'\n" << dns.log_text();
  const auto got = curl({"-w", "\n%{remote_ip}", url(v6_only, "/page.txt")});
  ASSERT_TRUE(got.ok()) << got.status << " " << got.err << gateway.log_text();
  EXPECT_EQ(got.out, std::string{page} + "\n" + fake);
  const auto seen = web_->requests_seen(1);
  ASSERT_EQ(seen.size(), 1U) << web_->access_log();
  EXPECT_EQ(split_words(seen[0]),
            (std::vector<std::string>{std::string{gw_up_v6}, std::string{server_v6}, "/page.txt", "200"}));

  // gate46ctl reads the same store.
  const auto list = run_command({GATE46CTL_PATH, "--store", (dir_ / "mappings.mdb").string(), "map", "list", "--json"});
  ASSERT_TRUE(list.ok()) << list.status << " " << list.err;
  const auto mappings = member(parse_json(list.out), "/mappings");
  ASSERT_TRUE(mappings.is_array()) << list.out;
  ASSERT_EQ(mappings.size(), 1U) << list.out;
  EXPECT_EQ(member(mappings, "/0/name"), std::string{v6_only} + ".") << list.out;
  EXPECT_EQ(member(mappings, "/0/v4"), fake) << list.out;
  EXPECT_EQ(owner_of(dir_ / "mappings.mdb").value_or(file_owner{}).uid, gate46_.uid);

  // A second gate46d on the dns process's control socket is refused, and the first one keeps
  // its socket and answers on it.
  {
    auto second = start({"dns", dns_socket, {}});
    const auto status = second.wait_exit(exit_timeout);
    ASSERT_TRUE(status.has_value()) << "a second gate46d on " << dns_socket << " keeps running";
    EXPECT_EQ(*status, 1);
    const auto log = second.log_text();
    EXPECT_NE(log.find("control.socket " + dns_socket.string() + " is in use by a running gate46d"), std::string::npos)
        << log;
    EXPECT_EQ(log.find("gate46d running"), std::string::npos) << log;
  }
  expect_control_socket(dns_socket);
  EXPECT_EQ(member(ctl_status(dns_socket), "/status/pid"), dns.pid());
  EXPECT_TRUE(dns.running());
  EXPECT_EQ(resolve_a(v6_only), fake) << "the first dns process still answers";

  ASSERT_NO_FATAL_FAILURE(expect_clean_stop(gateway));
  EXPECT_FALSE(table_present());
  ASSERT_NO_FATAL_FAILURE(expect_clean_stop(dns));
  EXPECT_FALSE(std::filesystem::exists(dns_socket));
  EXPECT_FALSE(std::filesystem::exists(gw_socket));
}

// ---- 5. directories that do not exist yet ------------------------------------------------------

TEST_F(privileges, missing_state_and_runtime_directories_are_created_for_gate46) {
  const auto store_dir = dir_ / "state/sub";
  const auto run_dir = dir_ / "run/sub";
  const auto socket = run_dir / "control.sock";
  write_config("", state_sections(store_dir / "mappings.mdb", socket));
  ASSERT_FALSE(std::filesystem::exists(dir_ / "state"));
  ASSERT_FALSE(std::filesystem::exists(dir_ / "run"));
  auto d = start({"dns", {}, {}});
  ASSERT_NO_FATAL_FAILURE(expect_running(d, "dns"));
  expect_least_privilege(d.pid(), gate46_, /*bounding=*/true);

  // /var/lib/gate46 and /run/gate46 as StateDirectory= and RuntimeDirectory= would make them.
  const auto state = owner_of(store_dir);
  ASSERT_TRUE(state.has_value() && state->directory) << store_dir;
  EXPECT_EQ(state->uid, gate46_.uid);
  EXPECT_EQ(state->gid, gate46_.gid);
  EXPECT_EQ(state->mode, 02770U) << std::oct << "0" << state->mode;
  const auto run = owner_of(run_dir);
  ASSERT_TRUE(run.has_value() && run->directory) << run_dir;
  EXPECT_EQ(run->uid, gate46_.uid);
  EXPECT_EQ(run->gid, gate46_.gid);
  EXPECT_EQ(run->mode, 0750U) << std::oct << "0" << run->mode;
  // The store was created there by gate46 after the drop; the socket bound before it is its too.
  const auto store = owner_of(store_dir / "mappings.mdb");
  ASSERT_TRUE(store.has_value()) << d.log_text();
  EXPECT_EQ(store->uid, gate46_.uid);
  expect_control_socket(socket);
  EXPECT_EQ(member(ctl_status(socket), "/status/user"), "gate46");
  // And the daemon works: a fake answer is committed to that store.
  ASSERT_NO_FATAL_FAILURE(start_servers());
  const auto fake = resolve_a(v6_only);
  EXPECT_TRUE(in(fake, "198.18.0.0/15")) << "A " << v6_only << ": '" << fake << "'\n" << d.log_text();

  ASSERT_NO_FATAL_FAILURE(expect_clean_stop(d));
  EXPECT_FALSE(std::filesystem::exists(socket));
}

}  // namespace
