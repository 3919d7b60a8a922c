// The configuration parser: TOML syntax, the schema walk and every value check. Any input
// either parses into a config or raises config_error naming a position; nothing else escapes.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "gate46/common/config.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text{reinterpret_cast<const char*>(data), size};
  try {
    const auto cfg = gate46::parse_config(text, "fuzz.toml");
    // A parsed config is complete: the required lists are there and equal to themselves.
    if (cfg.lan.interfaces.empty() || cfg.lan.networks.empty() || cfg.dns.upstreams.empty() ||
        !gate46::changed_keys(cfg, cfg).empty()) {
      std::abort();
    }
  } catch (const gate46::config_error& e) {
    if (e.file() != "fuzz.toml" || e.line() == 0) {
      std::abort();
    }
  }
  return 0;
}
