// gate46ctl firewall apply|remove|show [--dry-run]: the capture rules of the configuration in
// effect, installed, removed or compared with what the kernel holds.
#include <sched.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <optional>
#include <string>

#include <fmt/format.h>

#include "commands.hpp"
#include "gate46/tproxy/capture.hpp"
#include "gate46/tproxy/nftables.hpp"
#include "gate46/tproxy/routing.hpp"
#include "gate46/tproxy/ruleset.hpp"

namespace gate46::ctl {
namespace {

std::string routing_text(const config& cfg) {
  const auto r = tproxy::routing_settings_of(cfg);
  std::string out;
  for (const char* ip : {"ip", "ip -6"}) {
    out +=
        fmt::format("{} rule add fwmark {:#x}/{:#x} lookup {} priority {}\n", ip, r.mark, r.mask, r.table, r.priority);
    out += fmt::format("{} route add local default dev lo table {}\n", ip, r.table);
  }
  out += fmt::format("ip rule add fwmark {:#x}/{:#x} iif lo lookup main priority {}\n", r.mark, r.mask, r.priority - 1);
  return out;
}

// The table as this kernel's nft prints it: applied in a scratch network namespace of a child
// process and listed there. Comparing that with the live listing is exact (same kernel, same
// printer), where comparing our input text with nft's output would not be.
std::optional<std::string> canonical_table(const std::string& script) {
  int fds[2];
  if (pipe(fds) != 0) {
    return std::nullopt;
  }
  const pid_t child = fork();
  if (child < 0) {
    close(fds[0]);
    close(fds[1]);
    return std::nullopt;
  }
  if (child == 0) {
    close(fds[0]);
    int status = 1;
    if (unshare(CLONE_NEWNET) == 0) {
      try {
        tproxy::run_nft(script);
        if (const auto listed = tproxy::live_table()) {
          status = write(fds[1], listed->data(), listed->size()) == static_cast<ssize_t>(listed->size()) ? 0 : 1;
        }
      } catch (...) {
        status = 1;
      }
    }
    _exit(status);
  }
  close(fds[1]);
  std::string out;
  std::array<char, 4096> buffer{};
  for (ssize_t n; (n = read(fds[0], buffer.data(), buffer.size())) > 0;) {
    out.append(buffer.data(), static_cast<std::size_t>(n));
  }
  close(fds[0]);
  int status = 0;
  waitpid(child, &status, 0);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    return std::nullopt;
  }
  return out;
}

}  // namespace

void firewall_apply(const global_options& global, bool dry_run) {
  const auto cfg = resolve_config(global);
  const auto script = tproxy::make_apply_script(tproxy::ruleset_settings_of(cfg));
  if (dry_run) {
    std::printf("%s%s", script.c_str(), routing_text(cfg).c_str());
    return;
  }
  try {
    tproxy::apply_capture(cfg);
  } catch (const std::exception& e) {
    throw command_error{exit_status::failure, e.what()};
  }
  std::printf("capture rules applied (table inet gate46, policy routing table %u)\n", cfg.tproxy.route_table);
}

void firewall_remove(const global_options& global, bool dry_run) {
  const auto cfg = resolve_config(global);
  if (dry_run) {
    std::printf("%s", tproxy::make_remove_script().c_str());
    return;
  }
  try {
    tproxy::remove_capture(cfg);
  } catch (const std::exception& e) {
    throw command_error{exit_status::failure, e.what()};
  }
  std::printf("capture rules removed\n");
}

void firewall_show(const global_options& global) {
  const auto cfg = resolve_config(global);
  const auto table = tproxy::make_table(tproxy::ruleset_settings_of(cfg));
  std::printf("# generated\n%s%s", table.c_str(), routing_text(cfg).c_str());
  const auto live = tproxy::live_table();
  if (!live) {
    std::printf("# live: no table inet gate46 (not applied)\n");
    return;
  }
  std::printf("# live\n%s", live->c_str());
  const auto expected = canonical_table(tproxy::make_apply_script(tproxy::ruleset_settings_of(cfg)));
  if (!expected) {
    std::printf("# live table: cannot compare (no scratch network namespace here)\n");
  } else {
    std::printf("# live table %s the generated one\n", *expected == *live ? "matches" : "differs from");
  }
}

}  // namespace gate46::ctl
