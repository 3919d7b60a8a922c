// A private scratch directory for one test: created unique under /tmp, removed with
// everything in it when the object dies (also when the test failed).
//
// Thread-safety: none needed; a temp_dir belongs to one test.
#pragma once

#include <filesystem>
#include <string>
#include <string_view>

namespace gate46::testing {

class temp_dir {
 public:
  // Creates /tmp/<prefix>-XXXXXX (mkdtemp). Throws std::system_error.
  explicit temp_dir(std::string_view prefix = "gate46-test");
  temp_dir(const temp_dir&) = delete;
  temp_dir& operator=(const temp_dir&) = delete;
  // A moved-from temp_dir owns nothing and removes nothing.
  temp_dir(temp_dir&& other) noexcept;
  temp_dir& operator=(temp_dir&& other) noexcept;
  ~temp_dir();

  [[nodiscard]] const std::filesystem::path& path() const noexcept { return path_; }
  [[nodiscard]] std::filesystem::path operator/(std::string_view name) const { return path_ / name; }

  // Writes `text` to `name` below the directory and returns the file's path. The file is
  // replaced atomically (written aside, then renamed), so a daemon re-reading it on SIGHUP
  // never sees half a file. Throws std::system_error.
  std::filesystem::path write_file(std::string_view name, std::string_view text) const;

 private:
  void remove() noexcept;
  std::filesystem::path path_;
};

// The whole content of a file. Throws std::system_error if it cannot be read.
std::string read_file(const std::filesystem::path& path);

}  // namespace gate46::testing
