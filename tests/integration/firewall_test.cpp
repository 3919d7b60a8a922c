// gate46ctl firewall apply|remove|show and gate46d's `firewall` component in a gateway
// namespace that also holds other users' tables, rules and marks: apply installs exactly
// gate46's objects, applying again changes nothing, remove leaves the namespace as it was
// byte for byte.
#include <csignal>
#include <optional>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "gate46/testing/gate46_config.hpp"
#include "gate46/testing/knot.hpp"
#include "gate46/testing/netns.hpp"
#include "gate46/testing/privileges.hpp"
#include "gate46/testing/process.hpp"
#include "gate46/testing/temp_dir.hpp"

namespace {

using namespace gate46::testing;

class firewall_test : public ::testing::Test {
 protected:
  void SetUp() override {
    GATE46_SKIP_UNLESS_ROOT();
    gw_.emplace("gw");
    client_.emplace("client");
    connect_veth(*gw_, {"lan0", {"192.0.2.1/24", "2001:db8:1::1/64"}}, *client_,
                 {"eth0", {"192.0.2.2/24", "2001:db8:1::2/64"}});
    // The gateway is the client's router: fake addresses and everything else go to it.
    client_->run_checked({"ip", "route", "add", "default", "via", "192.0.2.1"});
    client_->run_checked({"ip", "-6", "route", "add", "default", "via", "2001:db8:1::1"});
    // Someone else's objects, present before, during and after.
    gw_->run_checked({"nft", "add", "table", "ip", "foreign"});
    gw_->run_checked({"nft", "add", "chain", "ip", "foreign", "pre", "{ type filter hook prerouting priority 0; }"});
    // A well-behaved other user of the mark: its own bit, the rest kept (gate46 does the same).
    gw_->run_checked(
        {"nft", "add", "rule", "ip", "foreign", "pre", "meta", "mark", "set", "meta", "mark", "|", "0x100"});
    gw_->run_checked({"ip", "rule", "add", "fwmark", "0x9", "lookup", "9", "priority", "300"});
    gw_->run_checked({"ip", "-6", "rule", "add", "fwmark", "0x9", "lookup", "9", "priority", "300"});
    config_ = dir_.write_file("gate46.toml",
                              "[lan]\n"
                              "interfaces = [\"lan0\"]\n"
                              "networks = [\"192.0.2.0/24\", \"2001:db8:1::/64\"]\n"
                              "[dns]\n"
                              "listen = [\"192.0.2.1:53\"]\n"
                              "upstreams = [\"203.0.113.53\"]\n"
                              "[tproxy]\n"
                              "capture_dns = true\n" +
                                  private_state_sections(dir_.path()));
  }

  // Everything gate46 may touch, as the tools print it.
  [[nodiscard]] std::string state() const {
    std::string out;
    for (const auto& argv : std::vector<std::vector<std::string>>{{"nft", "list", "ruleset"},
                                                                  {"ip", "rule"},
                                                                  {"ip", "-6", "rule"},
                                                                  {"ip", "route", "show", "table", "46"},
                                                                  {"ip", "-6", "route", "show", "table", "46"},
                                                                  {"ip", "route", "show", "table", "all"},
                                                                  {"ip", "-6", "route", "show", "table", "all"}}) {
      const auto r = gw_->run(argv);
      out += "$";
      for (const auto& a : argv) {
        out += " " + a;
      }
      // stdout only: `ip route show table 46` says "FIB table does not exist" on stderr until
      // a route was ever added there, and the kernel never deletes an emptied table. The
      // routes themselves are compared, here and in "table all".
      out += "\n" + r.out;
    }
    return out;
  }

  command_result ctl(const std::vector<std::string>& args) const {
    std::vector<std::string> argv{GATE46CTL_PATH, "--config", config_.string()};
    argv.insert(argv.end(), args.begin(), args.end());
    return gw_->run(argv);
  }

  temp_dir dir_{"gate46-fw"};
  std::filesystem::path config_;
  std::optional<netns> gw_;
  std::optional<netns> client_;
};

TEST_F(firewall_test, apply_twice_is_identical_and_remove_restores_the_state_byte_for_byte) {
  const auto before = state();

  const auto applied = ctl({"firewall", "apply"});
  ASSERT_EQ(applied.status, 0) << applied.err;
  const auto after_apply = state();
  EXPECT_NE(after_apply, before);
  const auto ruleset = gw_->run_checked({"nft", "list", "ruleset"});
  EXPECT_NE(ruleset.find("table inet gate46"), std::string::npos) << ruleset;
  EXPECT_NE(ruleset.find("tproxy ip to :7046"), std::string::npos) << ruleset;
  EXPECT_NE(ruleset.find("tproxy ip6 to :7046"), std::string::npos) << ruleset;
  EXPECT_NE(ruleset.find("redirect to :53"), std::string::npos) << ruleset;
  EXPECT_NE(ruleset.find("table ip foreign"), std::string::npos) << ruleset;
  for (const char* ip : {"-4", "-6"}) {
    const auto rules = gw_->run_checked({"ip", ip, "rule"});
    EXPECT_NE(rules.find("460:\tfrom all fwmark 0x46/0xff lookup 46"), std::string::npos) << rules;
    EXPECT_NE(rules.find("300:\tfrom all fwmark 0x9 lookup 9"), std::string::npos) << rules;
    const auto routes = gw_->run_checked({"ip", ip, "route", "show", "table", "46"});
    EXPECT_NE(routes.find("local default dev lo"), std::string::npos) << routes;
  }
  // IPv4's reverse-path lookups (iif lo) of captured packets stay in main (src_valid_mark = 1).
  const auto rules4 = gw_->run_checked({"ip", "-4", "rule"});
  EXPECT_NE(rules4.find("459:\tfrom all fwmark 0x46/0xff iif lo lookup main"), std::string::npos) << rules4;
  const auto rules6 = gw_->run_checked({"ip", "-6", "rule"});
  EXPECT_EQ(rules6.find("iif lo"), std::string::npos) << rules6;

  const auto again = ctl({"firewall", "apply"});
  ASSERT_EQ(again.status, 0) << again.err;
  EXPECT_EQ(state(), after_apply);

  const auto show = ctl({"firewall", "show"});
  ASSERT_EQ(show.status, 0) << show.err;
  EXPECT_NE(show.out.find("# live table matches the generated one"), std::string::npos) << show.out;

  const auto removed = ctl({"firewall", "remove"});
  ASSERT_EQ(removed.status, 0) << removed.err;
  EXPECT_EQ(state(), before);
  const auto removed_again = ctl({"firewall", "remove"});
  EXPECT_EQ(removed_again.status, 0) << removed_again.err;
  EXPECT_EQ(state(), before);

  const auto show_none = ctl({"firewall", "show"});
  EXPECT_NE(show_none.out.find("no table inet gate46"), std::string::npos) << show_none.out;
}

TEST_F(firewall_test, a_changed_live_table_is_reported) {
  ASSERT_EQ(ctl({"firewall", "apply"}).status, 0);
  gw_->run_checked({"nft", "add", "rule", "inet", "gate46", "input", "counter"});
  const auto show = ctl({"firewall", "show"});
  EXPECT_NE(show.out.find("# live table differs from the generated one"), std::string::npos) << show.out;
  ASSERT_EQ(ctl({"firewall", "remove"}).status, 0);
}

TEST_F(firewall_test, dry_run_prints_and_changes_nothing) {
  const auto before = state();
  const auto dry = ctl({"firewall", "apply", "--dry-run"});
  ASSERT_EQ(dry.status, 0) << dry.err;
  EXPECT_NE(dry.out.find("table inet gate46 {"), std::string::npos) << dry.out;
  EXPECT_NE(dry.out.find("ip -6 rule add fwmark 0x46/0xff lookup 46 priority 460"), std::string::npos) << dry.out;
  const auto dry_remove = ctl({"firewall", "remove", "--dry-run"});
  EXPECT_EQ(dry_remove.out, "table inet gate46 {}\ndelete table inet gate46\n");
  EXPECT_EQ(state(), before);
}

TEST_F(firewall_test, gate46d_applies_at_start_and_removes_at_stop) {
  const auto before = state();
  process d{gw_->command({GATE46D_PATH, "--config", config_.string(), "--components", "firewall"})};
  ASSERT_TRUE(d.wait_for_log("gate46d running: components [firewall]", 10s)) << d.log_text();
  const auto ruleset = gw_->run_checked({"nft", "list", "table", "inet", "gate46"});
  EXPECT_NE(ruleset.find("tproxy ip to :7046"), std::string::npos) << ruleset;
  ASSERT_TRUE(d.signal(SIGTERM));
  const auto status = d.wait_exit(15s);
  ASSERT_TRUE(status.has_value()) << d.log_text();
  EXPECT_EQ(*status, 0) << d.log_text();
  EXPECT_EQ(state(), before) << d.log_text();
}

TEST_F(firewall_test, without_cap_net_admin_apply_says_so_and_changes_nothing) {
  const auto before = state();
  const auto r = gw_->run(
      {"setpriv", "--bounding-set", "-net_admin", GATE46CTL_PATH, "--config", config_.string(), "firewall", "apply"});
  EXPECT_EQ(r.status, 1) << r.out << r.err;
  EXPECT_NE(r.err.find("CAP_NET_ADMIN is needed"), std::string::npos) << r.err;
  EXPECT_EQ(state(), before);
}

// What TPROXY hands to tproxy.port reaches a transparent listener with the address the client
// asked for, TCP and UDP, both families; UDP replies come back from that address.
TEST_F(firewall_test, flows_to_fake_addresses_reach_the_transparent_listener_with_their_destination) {
  ASSERT_EQ(ctl({"firewall", "apply"}).status, 0);
  process listener{gw_->command({TPROXY_LISTENER_PATH, "7046"})};
  ASSERT_TRUE(listener.wait_for_log("ready", 10s)) << listener.log_text();

  struct flow {
    const char* socat_target;
    const char* client;
    const char* original;
    const char* kind;
  };
  for (const auto& f : {flow{"TCP4:198.18.0.10:80", "192.0.2.2", "198.18.0.10:80", "tcp"},
                        flow{"TCP6:[2001:2::10]:443", "[2001:db8:1::2]", "[2001:2::10]:443", "tcp"},
                        flow{"UDP4:198.19.255.1:5000", "192.0.2.2", "198.19.255.1:5000", "udp"},
                        flow{"UDP6:[2001:2:0:ffff::1]:53", "[2001:db8:1::2]", "[2001:2:0:ffff::1]:53", "udp"}}) {
    SCOPED_TRACE(f.socat_target);
    const auto mark = listener.log_mark();
    // UDP: socat's connected socket takes the reply only from the address it sent to.
    const auto r = client_->run({"sh", "-c", std::string{"echo hello | socat -T 3 - "} + f.socat_target});
    EXPECT_EQ(r.status, 0) << r.err;
    EXPECT_EQ(r.out, std::string{"ok "} + f.original + "\n");
    ASSERT_TRUE(listener.wait_for_log(std::string{f.kind} + " " + f.client + ":", 5s, mark)) << listener.log_text();
    const auto log = listener.log_text(mark);
    EXPECT_NE(log.find(std::string{" -> "} + f.original), std::string::npos) << log;
  }

  // The listener's own port, asked for directly, is dropped (the input chain).
  const auto mark = listener.log_mark();
  const auto direct = client_->run({"socat", "-T", "2", "-", "TCP4:192.0.2.1:7046,connect-timeout=2"});
  EXPECT_NE(direct.status, 0) << direct.out;
  EXPECT_EQ(listener.log_text(mark), "");
  listener.signal(SIGTERM);
  ASSERT_EQ(ctl({"firewall", "remove"}).status, 0);
}

// With tproxy.capture_dns, a client that asks some other resolver is answered by the server on
// the gateway's DNS port.
TEST_F(firewall_test, dns_capture_redirects_port_53_to_the_gateway) {
  ASSERT_EQ(ctl({"firewall", "apply"}).status, 0);
  knot_server knot{*gw_, knot_options{{"192.0.2.1", "2001:db8:1::1"}, 53, standard_test_zone(), false}};
  for (const char* resolver : {"203.0.113.53", "2001:db8:2::53"}) {
    SCOPED_TRACE(resolver);
    const auto r = client_->run(
        {"dig", std::string{"@"} + resolver, "+time=2", "+tries=1", "+short", std::string{test_zone::v4_only}, "A"});
    EXPECT_EQ(r.status, 0) << r.out << r.err;
    EXPECT_EQ(r.out, std::string{test_zone::v4_only_address} + "\n") << r.err;
  }
  ASSERT_EQ(ctl({"firewall", "remove"}).status, 0);
  // Without the rules, nobody answers there.
  const auto r =
      client_->run({"dig", "@203.0.113.53", "+time=1", "+tries=1", "+short", std::string{test_zone::v4_only}, "A"});
  EXPECT_NE(r.status, 0) << r.out;
}

}  // namespace
