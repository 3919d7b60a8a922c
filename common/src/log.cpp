#include "gate46/common/log.hpp"

#include <chrono>
#include <mutex>

#include <fmt/chrono.h>
#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>
#include <nlohmann/json.hpp>

namespace gate46 {
namespace {

// One JSON object per line: {"time":"...","level":"info","logger":"dns","msg":"..."}.
class json_line_formatter final : public spdlog::formatter {
 public:
  void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override {
    const auto since_epoch = msg.time.time_since_epoch();
    const auto whole = std::chrono::floor<std::chrono::seconds>(since_epoch);
    const auto micros = std::chrono::duration_cast<std::chrono::microseconds>(since_epoch - whole).count();
    nlohmann::ordered_json line{
        {"time", fmt::format("{:%Y-%m-%dT%H:%M:%S}.{:06}Z", std::chrono::sys_seconds{whole}, micros)},
        {"level", std::string_view{spdlog::level::to_string_view(msg.level).data(),
                                   spdlog::level::to_string_view(msg.level).size()}},
        {"logger", std::string_view{msg.logger_name.data(), msg.logger_name.size()}},
        {"msg", std::string_view{msg.payload.data(), msg.payload.size()}},
    };
    // Log text may carry bytes from the network: replace invalid UTF-8 instead of throwing.
    const auto text = line.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
    dest.append(text.data(), text.data() + text.size());
    dest.push_back('\n');
  }

  [[nodiscard]] std::unique_ptr<spdlog::formatter> clone() const override {
    return std::make_unique<json_line_formatter>();
  }
};

spdlog::level::level_enum to_spdlog(log_level level) {
  switch (level) {
    case log_level::trace:
      return spdlog::level::trace;
    case log_level::debug:
      return spdlog::level::debug;
    case log_level::info:
      return spdlog::level::info;
    case log_level::warn:
      return spdlog::level::warn;
    case log_level::error:
      return spdlog::level::err;
    case log_level::critical:
      return spdlog::level::critical;
    case log_level::off:
      return spdlog::level::off;
  }
  return spdlog::level::info;
}

// The one sink every gate46 logger writes to, and the settings new loggers start with.
std::unique_ptr<spdlog::formatter> make_formatter(log_format format) {
  if (format == log_format::json) {
    return std::make_unique<json_line_formatter>();
  }
  return std::make_unique<spdlog::pattern_formatter>("%Y-%m-%dT%H:%M:%S.%fZ %^%-5l%$ [%n] %v",
                                                     spdlog::pattern_time_type::utc);
}

// stderr is unbuffered, so every line reaches the journal (or the test's log file) at once.
struct logging_state {
  logging_state() { sink->set_formatter(make_formatter(settings.format)); }
  std::mutex mutex;
  std::shared_ptr<spdlog::sinks::stderr_sink_mt> sink = std::make_shared<spdlog::sinks::stderr_sink_mt>();
  log_config settings;
};

logging_state& state() {
  static logging_state instance;
  return instance;
}

}  // namespace

void configure_logging(const log_config& config) {
  auto& s = state();
  const std::lock_guard lock{s.mutex};
  s.settings = config;
  s.sink->set_formatter(make_formatter(config.format));
  spdlog::apply_all([&](const std::shared_ptr<spdlog::logger>& l) { l->set_level(to_spdlog(config.level)); });
}

std::shared_ptr<spdlog::logger> logger(std::string_view name) {
  auto& s = state();
  const std::lock_guard lock{s.mutex};
  const std::string key{name};
  if (auto existing = spdlog::get(key)) {
    return existing;
  }
  auto created = std::make_shared<spdlog::logger>(key, s.sink);
  created->set_level(to_spdlog(s.settings.level));
  spdlog::register_logger(created);
  return created;
}

}  // namespace gate46
