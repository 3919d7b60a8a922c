#include "gate46/testing/web_server.hpp"

#include <fstream>
#include <stdexcept>

#include "gate46/testing/dig.hpp"
#include "gate46/testing/temp_dir.hpp"
#include "gate46/testing/wait.hpp"

namespace gate46::testing {

namespace {

constexpr auto start_timeout = std::chrono::seconds{10};

void write_text_file(const std::filesystem::path& path, const std::string& text) {
  std::ofstream out{path, std::ios::binary | std::ios::trunc};
  out << text;
  if (!out) {
    throw std::runtime_error{"cannot write " + path.string()};
  }
}

void replace_all(std::string& text, std::string_view what, const std::string& with) {
  for (auto at = text.find(what); at != std::string::npos; at = text.find(what, at + with.size())) {
    text.replace(at, what.size(), with);
  }
}

std::string config_text(const std::filesystem::path& dir, const web_server_options& options) {
  std::string text =
      "daemon off;\n"
      "user root;\n"
      "worker_processes 2;\n"
      "pid @DIR@/nginx.pid;\n"
      "error_log @DIR@/nginx-error.log;\n"
      "events { worker_connections 1024; }\n"
      "http {\n"
      "  log_format flows '$remote_addr $server_addr $request_uri $status';\n"
      "  access_log @DIR@/access.log flows;\n"
      "  client_body_temp_path @DIR@/client_body;\n"
      "  proxy_temp_path @DIR@/proxy;\n"
      "  fastcgi_temp_path @DIR@/fastcgi;\n"
      "  uwsgi_temp_path @DIR@/uwsgi;\n"
      "  scgi_temp_path @DIR@/scgi;\n" +
      options.http_extra + "  server {\n";
  for (const auto& at : options.listen) {
    text += "    listen " + at + " backlog=1024;\n";
  }
  text += "    root @DIR@/www;\n" + options.server_extra + "  }\n}\n";
  replace_all(text, "@DIR@", dir.string());
  return text;
}

std::filesystem::path written(const std::filesystem::path& dir, const web_server_options& options,
                              const std::string& probe) {
  std::filesystem::create_directories(dir / "www");
  if (!std::filesystem::exists(dir / "www" / probe)) {
    write_text_file(dir / "www" / probe, "");
  }
  auto conf = dir / "nginx.conf";
  write_text_file(conf, config_text(dir, options));
  return conf;
}

std::string try_read(const std::filesystem::path& path) {
  try {
    return read_file(path);
  } catch (const std::exception&) {
    return "";
  }
}

}  // namespace

web_server::web_server(const netns& ns, const std::filesystem::path& dir, web_server_options options,
                       const std::string& probe)
    : dir_{dir},
      // The query string tells the probe's log lines from a test's own requests for that file.
      probe_uri_{"/" + probe + "?gate46-probe"},
      nginx_{ns.command({"nginx", "-e", (dir / "nginx-error.log").string(), "-p", dir.string(), "-c",
                         written(dir, options, probe).string()})} {
  // Up when it serves on every address (asked from inside its own namespace).
  const bool up = wait_until(
      [&] {
        for (const auto& at : options.listen) {
          std::string probe_url = "http://";
          probe_url.append(at).append(probe_uri_);
          if (!ns.run({"curl", "-sf", "--max-time", "1", "-o", "/dev/null", probe_url}).ok()) {
            return false;
          }
        }
        return true;
      },
      start_timeout, std::chrono::milliseconds{50});
  if (!up) {
    throw std::runtime_error{"nginx did not come up: " + nginx_.log_text() + error_log()};
  }
  access_mark_ = access_log().size();
}

std::string web_server::access_log() const {
  return try_read(dir_ / "access.log");
}

std::string web_server::error_log() const {
  return try_read(dir_ / "nginx-error.log");
}

std::vector<std::string> web_server::requests_seen(std::size_t expected) const {
  std::vector<std::string> lines;
  wait_until(
      [&] {
        lines.clear();
        for (auto& l : lines_of(access_log().substr(access_mark_))) {
          // nginx logs a request after its response: the start-up probe's line may land after
          // the mark.
          const auto words = split_words(l);
          if (!l.empty() && !(words.size() > 2 && words[2] == probe_uri_)) {
            lines.push_back(std::move(l));
          }
        }
        return lines.size() >= expected;
      },
      std::chrono::seconds{2});
  return lines;
}

std::string url(std::string_view host, std::string_view path, int port) {
  const bool literal_v6 = host.find(':') != std::string_view::npos;
  std::string u = "http://";
  u += literal_v6 ? "[" + std::string{host} + "]" : std::string{host};
  if (port != 80) {
    u += ":" + std::to_string(port);
  }
  return u + std::string{path};
}

std::map<std::string, std::uint64_t> component_counters(const std::string& log, std::string_view component) {
  std::map<std::string, std::uint64_t> counters;
  const auto at = log.find("component " + std::string{component} + " counters: ");
  if (at == std::string::npos) {
    return counters;
  }
  const auto line = log.substr(at, log.find('\n', at) - at);
  for (const auto& word : split_words(line)) {
    const auto eq = word.find('=');
    if (eq != std::string::npos && eq + 1 < word.size() &&
        word.find_first_not_of("0123456789", eq + 1) == std::string::npos) {
      counters[word.substr(0, eq)] = std::stoull(word.substr(eq + 1));
    }
  }
  return counters;
}

}  // namespace gate46::testing
