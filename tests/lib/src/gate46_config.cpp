#include "gate46/testing/gate46_config.hpp"

#include <grp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <stdexcept>

#include "gate46/testing/privileges.hpp"

namespace gate46::testing {

std::string private_state_sections(const std::filesystem::path& dir) {
  if (::geteuid() == 0) {
    // Started as root, gate46d runs as gate46: the directory is its state directory, as
    // /var/lib/gate46 is on a box (group gate46, 02770).
    ensure_gate46_group();
    // NOLINTNEXTLINE(concurrency-mt-unsafe): tests call this from their one thread
    const auto* group = ::getgrnam("gate46");
    if (group == nullptr || ::chown(dir.c_str(), static_cast<uid_t>(-1), group->gr_gid) != 0 ||
        ::chmod(dir.c_str(), 02770) != 0) {
      throw std::runtime_error{"cannot give " + dir.string() + " to group gate46"};
    }
  }
  const auto key = dir / "pool.key";
  if (!std::filesystem::exists(key)) {
    std::ofstream out{key, std::ios::binary};
    out << "0123456789abcdef";  // any 16 bytes: tests need placement, not secrecy
    if (!out) {
      throw std::runtime_error{"cannot write " + key.string()};
    }
  }
  return "\n[store]\npath = \"" + (dir / "mappings.mdb").string() + "\"\n" +  //
         "\n[pools]\nkey_file = \"" + key.string() + "\"\n" +                 //
         "\n[control]\nsocket = \"" + (dir / "control.sock").string() + "\"\n";
}

}  // namespace gate46::testing
