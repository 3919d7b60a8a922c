#include "gate46/testing/gate46_config.hpp"

#include <fstream>
#include <stdexcept>

namespace gate46::testing {

std::string private_state_sections(const std::filesystem::path& dir) {
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
