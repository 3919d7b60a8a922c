#include "gate46/gateway/privileges.hpp"

#include <grp.h>
#include <pwd.h>
#include <sys/capability.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <memory>
#include <optional>
#include <stdexcept>
#include <system_error>
#include <vector>

namespace gate46::gateway {
namespace {

constexpr std::array<cap_value_t, 2> kept_capabilities{CAP_NET_ADMIN, CAP_NET_BIND_SERVICE};

bool is_kept(cap_value_t c) {
  return std::find(kept_capabilities.begin(), kept_capabilities.end(), c) != kept_capabilities.end();
}

[[noreturn]] void fail(const std::string& what) {
  throw std::system_error{errno, std::generic_category(), what};
}

struct cap_deleter {
  void operator()(void* p) const noexcept { cap_free(p); }
};
using cap_ptr = std::unique_ptr<std::remove_pointer_t<cap_t>, cap_deleter>;
using cap_text = std::unique_ptr<char, cap_deleter>;

std::optional<passwd> lookup(uid_t uid, const char* name, std::vector<char>& buffer) {
  passwd entry{};
  passwd* found = nullptr;
  buffer.resize(16384);
  const int rc = name != nullptr ? getpwnam_r(name, &entry, buffer.data(), buffer.size(), &found)
                                 : getpwuid_r(uid, &entry, buffer.data(), buffer.size(), &found);
  if (rc != 0 || found == nullptr) {
    return std::nullopt;
  }
  return entry;
}

}  // namespace

account find_account(const std::string& name) {
  std::vector<char> buffer;
  const auto entry = lookup(0, name.c_str(), buffer);
  if (!entry) {
    throw std::runtime_error{"daemon.user \"" + name +
                             "\" does not exist (create it with systemd-sysusers from deploy/sysusers.d/gate46.conf, "
                             "or name another user)"};
  }
  return account{name, entry->pw_uid, entry->pw_gid};
}

std::optional<gid_t> find_group(const std::string& name) {
  std::vector<char> buffer(16384);
  group entry{};
  group* found = nullptr;
  if (getgrnam_r(name.c_str(), &entry, buffer.data(), buffer.size(), &found) == 0 && found != nullptr) {
    return found->gr_gid;
  }
  return std::nullopt;
}

void prepare_directory(const std::filesystem::path& directory, const account& owner, mode_t mode) {
  std::error_code ec;
  if (std::filesystem::exists(directory, ec)) {
    return;
  }
  std::filesystem::create_directories(directory, ec);
  if (ec) {
    throw std::runtime_error{"cannot create " + directory.string() + ": " + ec.message()};
  }
  if (::chown(directory.c_str(), owner.uid, owner.gid) != 0 || ::chmod(directory.c_str(), mode) != 0) {
    throw std::runtime_error{"cannot give " + directory.string() + " to " + owner.name + ": " +
                             std::generic_category().message(errno)};
  }
}

void drop_privileges(const std::optional<account>& to) {
  if (::geteuid() == 0 && to) {
    // While root still holds CAP_SETPCAP: nothing this process could ever exec regains more.
    for (cap_value_t c = 0; c < static_cast<cap_value_t>(cap_max_bits()); ++c) {
      if (!is_kept(c) && CAP_IS_SUPPORTED(c) && cap_drop_bound(c) != 0) {
        fail("cannot drop a capability from the bounding set");
      }
    }
    // Keep the permitted set across the uid change; the effective set is trimmed below.
    if (::prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) != 0) {
      fail("prctl(PR_SET_KEEPCAPS)");
    }
    if (::initgroups(to->name.c_str(), to->gid) != 0) {
      fail("cannot take the groups of " + to->name);
    }
    if (::setresgid(to->gid, to->gid, to->gid) != 0) {
      fail("cannot become group " + std::to_string(to->gid));
    }
    if (::setresuid(to->uid, to->uid, to->uid) != 0) {
      fail("cannot become user " + to->name);
    }
    if (::prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0) != 0) {
      fail("prctl(PR_SET_KEEPCAPS)");
    }
  }

  // Permitted and effective: those of the two it holds; inheritable (and so ambient): none.
  const cap_ptr current{cap_get_proc()};
  const cap_ptr next{cap_init()};
  if (!current || !next) {
    fail("cap_get_proc");
  }
  for (const auto c : kept_capabilities) {
    cap_flag_value_t held = CAP_CLEAR;
    if (cap_get_flag(current.get(), c, CAP_PERMITTED, &held) != 0) {
      fail("cap_get_flag");
    }
    if (held == CAP_SET) {
      if (cap_set_flag(next.get(), CAP_PERMITTED, 1, &c, CAP_SET) != 0 ||
          cap_set_flag(next.get(), CAP_EFFECTIVE, 1, &c, CAP_SET) != 0) {
        fail("cap_set_flag");
      }
    }
  }
  if (cap_set_proc(next.get()) != 0) {
    fail("cannot set the capabilities");
  }
  if (CAP_AMBIENT_SUPPORTED() && cap_reset_ambient() != 0) {
    fail("cannot clear the ambient capabilities");
  }
  // gate46d never executes anything; should it ever, nothing gains privileges that way.
  if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) {
    fail("prctl(PR_SET_NO_NEW_PRIVS)");
  }
}

std::string current_user_name() {
  std::vector<char> buffer;
  const auto uid = ::geteuid();
  const auto entry = lookup(uid, nullptr, buffer);
  return entry ? std::string{entry->pw_name} : std::to_string(uid);
}

std::string describe_privileges() {
  const cap_ptr current{cap_get_proc()};
  const cap_text text{current ? cap_to_text(current.get(), nullptr) : nullptr};
  const std::string caps = text ? std::string{text.get()} : std::string{"(unknown)"};
  // cap_to_text says "=" for the empty set.
  return current_user_name() + " (uid " + std::to_string(::geteuid()) + "), capabilities " +
         (caps == "=" ? std::string{"none"} : caps);
}

}  // namespace gate46::gateway
