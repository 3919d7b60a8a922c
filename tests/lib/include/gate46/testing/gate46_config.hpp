// Pieces of gate46 configuration files that every test running gate46d writes alike.
#pragma once

#include <filesystem>
#include <string>

namespace gate46::testing {

// The [store], [pools] and [control] sections that keep a test's gate46d state (mapping store,
// pool key, control socket) inside `dir`; writes the 16-byte pool key they name if missing.
// As root, also makes `dir` gate46d's state directory (group gate46, 02770; creating the gate46
// user and group if needed): started as root, gate46d runs as gate46.
std::string private_state_sections(const std::filesystem::path& dir);

}  // namespace gate46::testing
