#include "gate46/testing/temp_dir.hpp"

#include <cerrno>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <sstream>
#include <system_error>
#include <utility>

namespace gate46::testing {

temp_dir::temp_dir(std::string_view prefix) {
  std::string pattern = "/tmp/" + std::string{prefix} + "-XXXXXX";
  if (::mkdtemp(pattern.data()) == nullptr) {
    throw std::system_error{errno, std::generic_category(), "mkdtemp " + pattern};
  }
  path_ = pattern;
}

temp_dir::temp_dir(temp_dir&& other) noexcept : path_{std::exchange(other.path_, {})} {}

temp_dir& temp_dir::operator=(temp_dir&& other) noexcept {
  if (this != &other) {
    remove();
    path_ = std::exchange(other.path_, {});
  }
  return *this;
}

temp_dir::~temp_dir() {
  remove();
}

void temp_dir::remove() noexcept {
  if (!path_.empty()) {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
    path_.clear();
  }
}

std::filesystem::path temp_dir::write_file(std::string_view name, std::string_view text) const {
  auto target = path_ / name;
  auto aside = target;
  aside += ".partial";
  {
    std::ofstream out{aside, std::ios::binary | std::ios::trunc};
    out.write(text.data(), static_cast<std::streamsize>(text.size()));
    out.close();
    if (!out) {
      throw std::system_error{errno, std::generic_category(), "write " + aside.string()};
    }
  }
  std::filesystem::rename(aside, target);  // throws filesystem_error (a system_error)
  return target;
}

std::string read_file(const std::filesystem::path& path) {
  std::ifstream in{path, std::ios::binary};
  if (!in) {
    throw std::system_error{errno, std::generic_category(), "read " + path.string()};
  }
  return std::string{std::istreambuf_iterator<char>{in}, std::istreambuf_iterator<char>{}};
}

}  // namespace gate46::testing
