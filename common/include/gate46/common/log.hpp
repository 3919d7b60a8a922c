// Logging: spdlog underneath, one sink (stderr, which systemd hands to the journal), text or
// JSON lines. Components log through named loggers so a line says where it came from.
// Thread-safety: every function here may be called from any thread.
#pragma once

#include <memory>
#include <string_view>

#include <spdlog/logger.h>

#include "gate46/common/config.hpp"

namespace gate46 {

// Applies level and format to every gate46 logger, existing and future. Called at start and
// on every reload.
void configure_logging(const log_config& config);

// The logger for a component or subsystem ("daemon", "dns", ...), created on first use.
std::shared_ptr<spdlog::logger> logger(std::string_view name);

}  // namespace gate46
