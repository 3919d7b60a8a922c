#include "gate46/testing/knot.hpp"

#include <csignal>
#include <stdexcept>
#include <string>

#include "gate46/common/address.hpp"

namespace gate46::testing {
namespace {

std::string quoted(const std::filesystem::path& path) {
  return "\"" + path.string() + "\"";
}

}  // namespace

std::vector<zone_record> large_txt_records(std::string_view owner, unsigned count, unsigned length) {
  if (length == 0 || length > 255) {
    throw std::invalid_argument{"large_txt_records: a character-string holds 1 to 255 characters"};
  }
  std::vector<zone_record> out;
  for (unsigned i = 0; i < count; ++i) {
    // "record-3-" then letters up to `length`: distinct, printable, no quoting needed.
    std::string text = "record-" + std::to_string(i) + "-";
    while (text.size() < length) {
      text.push_back(static_cast<char>('a' + (text.size() + i) % 26));
    }
    text.resize(length);
    out.push_back({std::string{owner}, "TXT", "\"" + text + "\""});
  }
  return out;
}

knot_zone standard_test_zone() {
  knot_zone zone;
  zone.origin = std::string{test_zone::origin};
  zone.records = {
      {"v4only", "A", std::string{test_zone::v4_only_address}},
      {"v6only", "AAAA", std::string{test_zone::v6_only_address}},
      {"www", "A", std::string{test_zone::dual_v4_address}},
      {"www", "AAAA", std::string{test_zone::dual_v6_address}},
      {"alias", "CNAME", "alias2", 120},
      {"alias2", "CNAME", "www", 180},
      {"textonly", "TXT", "\"nothing but text\""},
  };
  for (auto& r : large_txt_records("big", test_zone::large_txt_count)) {
    zone.records.push_back(std::move(r));
  }
  return zone;
}

knot_server::knot_server(const netns& ns, knot_options options) : ns_{ns}, options_{std::move(options)} {
  if (options_.addresses.empty()) {
    throw std::invalid_argument{"knot_server: no listen address"};
  }
  std::string listen;
  for (const auto& a : options_.addresses) {
    if (!is_test_address(a)) {
      throw std::invalid_argument{"knot_server: " + a + " is not a test address"};
    }
    listen += (listen.empty() ? "" : ", ") + ("\"" + a + "@" + std::to_string(options_.port) + "\"");
  }
  for (const char* sub : {"run", "db", "zones"}) {
    std::filesystem::create_directories(dir_ / sub);
  }
  // knotd stays root (no `user:`): everything it opens is in this private directory.
  const std::string config =
      "server:\n"
      "    rundir: " +
      quoted(dir_ / "run") +
      "\n"
      "    pidfile: " +
      quoted(dir_ / "run" / "knot.pid") +
      "\n"
      "    listen: [ " +
      listen +
      " ]\n"
      "    udp-max-payload: 1232\n"
      "    udp-workers: 1\n"
      "    tcp-workers: 1\n"
      "    background-workers: 1\n"
      "database:\n"
      "    storage: " +
      quoted(dir_ / "db") +
      "\n"
      "control:\n"
      "    listen: " +
      quoted(dir_ / "run" / "knot.sock") +
      "\n"
      "log:\n"
      "  - target: stderr\n"
      "    any: info\n"
      "mod-stats:\n"
      "  - id: transports\n"
      "    request-protocol: on\n"
      "template:\n"
      "  - id: default\n"
      "    storage: " +
      quoted(dir_ / "zones") +
      "\n"
      "    file: \"%s.zone\"\n"
      "    zonefile-sync: -1\n"
      "    zonefile-load: whole\n"
      "    journal-content: none\n"
      "    global-module: mod-stats/transports\n" +
      std::string{options_.dnssec ? "    dnssec-signing: on\n" : ""} +
      "zone:\n"
      "  - domain: \"" +
      options_.zone.origin + "\"\n";
  config_path_ = dir_.write_file("knot.conf", config);
  write_zone();
  start();
}

knot_server::~knot_server() {
  try {
    stop();
  } catch (...) {
    // The process destructor still kills and reaps it.
  }
}

std::filesystem::path knot_server::zone_path() const {
  return dir_ / "zones" / (options_.zone.origin + "zone");
}

void knot_server::write_zone() const {
  const auto& z = options_.zone;
  std::string text = "$ORIGIN " + z.origin + "\n$TTL " + std::to_string(z.soa_ttl) + "\n";
  text += "@ " + std::to_string(z.soa_ttl) + " IN SOA ns hostmaster " + std::to_string(z.serial) + " 3600 600 86400 " +
          std::to_string(z.negative_ttl) + "\n";
  text += "@ " + std::to_string(z.soa_ttl) + " IN NS ns\n";
  for (const auto& a : options_.addresses) {
    const auto parsed = ip_address::parse(a);
    text += "ns " + std::to_string(z.soa_ttl) + " IN " + (parsed && parsed->is_v6() ? "AAAA " : "A ") + a + "\n";
  }
  for (const auto& r : z.records) {
    text += r.owner + " " + std::to_string(r.ttl) + " IN " + r.type + " " + r.rdata + "\n";
  }
  // write_file renames into place: knotd never reads half a zone.
  dir_.write_file(std::filesystem::relative(zone_path(), dir_.path()).string(), text);
}

command_result knot_server::knotc(const std::vector<std::string>& args) const {
  std::vector<std::string> argv{"knotc", "-c", config_path_.string(), "-t", "2"};
  argv.insert(argv.end(), args.begin(), args.end());
  return run_command(argv, 5s);
}

bool knot_server::serving_serial(std::uint32_t serial) const {
  // "[gate46.test.] role: master | serial: 1" (more fields may follow) once loaded.
  const auto status = knotc({"zone-status", options_.zone.origin});
  const std::string key = "serial: " + std::to_string(serial);
  const auto at = status.out.find(key);
  if (!status.ok() || at == std::string::npos) {
    return false;
  }
  const auto end = at + key.size();
  return end == status.out.size() || status.out[end] == ' ' || status.out[end] == '\n';
}

void knot_server::start() {
  if (knotd_ && knotd_->running()) {
    return;
  }
  knotd_.reset();
  knotd_.emplace(ns_.command({"knotd", "-c", config_path_.string()}));
  const auto serial = options_.zone.serial;
  const bool up = wait_until(
      [&] {
        if (!knotd_->running()) {
          return true;  // reported below
        }
        // Listening on every address once the log says so for each, then the zone.
        const auto log = knotd_->log_text();
        for (const auto& a : options_.addresses) {
          if (log.find("binding to interface " + a + "@") == std::string::npos) {
            return false;
          }
        }
        return serving_serial(serial);
      },
      wait_timeout, 25ms);
  if (!up || !knotd_->running()) {
    const auto log = knotd_->log_text();
    knotd_.reset();
    throw std::runtime_error{"knotd did not come up (zone " + options_.zone.origin + ", serial " +
                             std::to_string(serial) + ") within " + std::to_string(wait_timeout.count()) +
                             " ms; its log:\n" + log};
  }
}

void knot_server::stop() {
  if (!knotd_ || !knotd_->running()) {
    return;
  }
  knotd_->signal(SIGTERM);
  if (!knotd_->wait_exit(wait_timeout)) {
    knotd_->signal(SIGKILL);
    knotd_->wait_exit(wait_timeout);
  }
}

bool knot_server::running() {
  return knotd_ && knotd_->running();
}

void knot_server::replace_zone(knot_zone zone) {
  if (zone.origin != options_.zone.origin) {
    throw std::invalid_argument{"knot_server::replace_zone: the origin cannot change"};
  }
  zone.serial = std::max(zone.serial, options_.zone.serial + 1);
  options_.zone = std::move(zone);
  write_zone();
  if (!running()) {
    return;  // start() loads it
  }
  const auto reload = knotc({"zone-reload", options_.zone.origin});
  if (!reload.ok()) {
    throw std::runtime_error{"knotc zone-reload: " + reload.out + reload.err};
  }
  if (!wait_until([&] { return serving_serial(options_.zone.serial); }, wait_timeout, 20ms)) {
    throw std::runtime_error{"knotd did not load serial " + std::to_string(options_.zone.serial) + "; its log:\n" +
                             log_text()};
  }
}

std::uint64_t knot_server::queries_over(std::string_view transport) const {
  const auto stats = knotc({"stats", "mod-stats.request-protocol"});
  if (!stats.ok()) {
    throw std::runtime_error{"knotc stats: " + stats.out + stats.err};
  }
  // "mod-stats.request-protocol[udp4] = 3"
  const std::string key = "[" + std::string{transport} + "] = ";
  const auto at = stats.out.find(key);
  if (at == std::string::npos) {
    return 0;
  }
  return std::stoull(stats.out.substr(at + key.size()));
}

std::string knot_server::log_text() const {
  return knotd_ ? knotd_->log_text() : std::string{};
}

}  // namespace gate46::testing
