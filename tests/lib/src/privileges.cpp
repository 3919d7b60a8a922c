#include "gate46/testing/privileges.hpp"

#include <grp.h>
#include <pwd.h>

#include <filesystem>
#include <stdexcept>

#include "gate46/testing/process.hpp"

namespace gate46::testing {
namespace {

bool gate46_account_exists() {
  // NOLINTNEXTLINE(concurrency-mt-unsafe): tests call this from their one thread
  return ::getgrnam("gate46") != nullptr && ::getpwnam("gate46") != nullptr;
}

}  // namespace

void ensure_gate46_group() {
  if (gate46_account_exists()) {
    return;
  }
  const auto sysusers_file = std::filesystem::path{GATE46_SOURCE_DIR} / "deploy/sysusers.d/gate46.conf";
  run_checked({"systemd-sysusers", sysusers_file.string()}, 30s);
  if (!gate46_account_exists()) {
    throw std::runtime_error{"systemd-sysusers " + sysusers_file.string() + " ran but left no gate46 user and group"};
  }
}

}  // namespace gate46::testing
