// Least privilege for gate46d. What it needs after start: CAP_NET_ADMIN (nftables, policy
// routes, transparent sockets, SO_MARK) and CAP_NET_BIND_SERVICE (port 53 and 1080 listeners,
// which open and close as LAN addresses come and go, so binding never ends at start). Nothing
// else: no root, no file access beyond what its user owns.
//
// Under systemd the unit starts it as daemon.user with those two as ambient capabilities. Started
// by hand as root, it prepares what only root can (its state and runtime directories, the
// control socket), then becomes daemon.user keeping those two. Either way it gives up every
// other capability it was handed, and sets no_new_privs.
//
// Thread-safety: capabilities belong to a thread, and a thread started later inherits its
// creator's. drop_privileges() must therefore run while the process has a single thread.
#pragma once

#include <sys/types.h>

#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

namespace gate46::gateway {

struct account {
  std::string name;
  uid_t uid = 0;
  gid_t gid = 0;  // the primary group
};

// The account called `name`; throws std::runtime_error when there is none.
account find_account(const std::string& name);

// The group called `name`, if there is one.
std::optional<gid_t> find_group(const std::string& name);

// Creates `directory` (and missing parents) for `owner` when it does not exist: owned by the
// account, mode `mode`. An existing directory is left as it is. Throws std::runtime_error.
void prepare_directory(const std::filesystem::path& directory, const account& owner, mode_t mode);

// Precondition: the process has one thread. From root, becomes `to` (its groups, gid, uid);
// from anyone, keeps at most CAP_NET_ADMIN and CAP_NET_BIND_SERVICE of what it holds (none
// inheritable or ambient) and sets no_new_privs. `to` is ignored when not running as root.
// Throws std::system_error.
void drop_privileges(const std::optional<account>& to);

// "gate46 (uid 998), capabilities cap_net_admin,cap_net_bind_service=ep" for the log and status.
std::string describe_privileges();
// The effective user's name (its uid in digits when it has none).
std::string current_user_name();

}  // namespace gate46::gateway
