// gate46ctl's exit statuses: scripts tell failures apart by these numbers, so they never change
// meaning. `gate46ctl --help` prints the same table (exit_status_footer()).
//
//   0  success
//   1  usage error, or any failure not listed below
//   2  configuration error: the file is invalid or unreadable, no configuration at all (neither
//      --config nor the default file nor --store), or the pool key is needed and unusable
//   3  no mapping for that name or address
//   4  the address is in neither fake pool
//   5  the mapping store is missing (read-only commands never create one), unreadable, or corrupt
//   6  refused: a flow holds the mapping (map del), or the key file exists (keygen); --force
//      overrides both
//   7  no room or conflict: the address belongs to another name, the pool is exhausted, or the
//      store is full
//   8  gate46d does not answer: not running, no permission on its control socket, or too slow
#pragma once

#include <stdexcept>
#include <string>

namespace gate46::ctl {

enum class exit_status : int {
  success = 0,
  failure = 1,
  config_error = 2,
  not_found = 3,
  outside_pools = 4,
  store_unavailable = 5,
  refused = 6,
  conflict = 7,
  daemon_unreachable = 8,
};

// The table above, for the --help footer.
inline constexpr const char* exit_status_footer =
    "Exit status:\n"
    "  0  success\n"
    "  1  usage error, or any failure not listed below\n"
    "  2  configuration error (invalid or missing configuration, unusable pool key)\n"
    "  3  no mapping for that name or address\n"
    "  4  the address is in neither fake pool\n"
    "  5  the mapping store is missing, unreadable or corrupt\n"
    "  6  refused: held by a flow (map del), key file exists (keygen); --force overrides\n"
    "  7  address taken by another name, pool exhausted, or store full\n"
    "  8  gate46d does not answer (not running, no permission on control.socket)";

// A command's failure: main() prints "gate46ctl: <what()>" on stderr and exits with `status`.
class command_error : public std::runtime_error {
 public:
  command_error(exit_status status, const std::string& message) : std::runtime_error{message}, status_{status} {}
  [[nodiscard]] exit_status status() const noexcept { return status_; }

 private:
  exit_status status_;
};

}  // namespace gate46::ctl
