// gate46ctl status, flows and stats: one request over the running gate46d's control socket.
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>

#include <nlohmann/json.hpp>

#include "commands.hpp"
#include "gate46/common/control.hpp"
#include "live_output.hpp"

namespace gate46::ctl {
namespace {

// The daemon answers from its control thread; a status never takes long, a flow table of
// 100,000 entries well under this.
constexpr std::chrono::seconds exchange_limit{10};

class descriptor {
 public:
  explicit descriptor(int fd) : fd_{fd} {}
  descriptor(const descriptor&) = delete;
  descriptor& operator=(const descriptor&) = delete;
  ~descriptor() {
    if (fd_ >= 0) {
      ::close(fd_);
    }
  }
  [[nodiscard]] int get() const noexcept { return fd_; }

 private:
  int fd_;
};

std::filesystem::path socket_path(const global_options& global, const std::optional<std::filesystem::path>& socket) {
  if (socket) {
    return *socket;
  }
  std::error_code ec;
  if (!global.config_path && !std::filesystem::exists(default_config_path, ec)) {
    return control_config{}.socket;
  }
  return resolve_config(global).control.socket;
}

[[noreturn]] void unreachable(const std::filesystem::path& path, int error) {
  std::string why;
  if (error == ENOENT || error == ECONNREFUSED) {
    why = "gate46d is not running (nothing answers on " + path.string() + ")";
  } else if (error == EACCES || error == EPERM) {
    why = "no permission to use " + path.string() + ": run as root or as a member of group gate46";
  } else {
    why = "cannot reach gate46d on " + path.string() + ": " + std::generic_category().message(error);
  }
  throw command_error{exit_status::daemon_unreachable, why};
}

// Waits for `events` on fd until the exchange's deadline; throws when it passes.
void wait_for(int fd, short events, std::chrono::steady_clock::time_point deadline, const std::filesystem::path& path) {
  for (;;) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      throw command_error{exit_status::daemon_unreachable, "gate46d did not answer on " + path.string() + " within " +
                                                               std::to_string(exchange_limit.count()) + " s"};
    }
    pollfd p{fd, events, 0};
    const int n = ::poll(&p, 1, static_cast<int>(left.count()));
    if (n > 0) {
      return;
    }
    if (n < 0 && errno != EINTR) {
      unreachable(path, errno);
    }
  }
}

control::reply exchange(const std::filesystem::path& path, control::command command) {
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  const auto& text = path.native();
  if (text.size() >= sizeof address.sun_path) {
    throw command_error{exit_status::failure, "control socket path too long: " + text};
  }
  std::memcpy(address.sun_path, text.c_str(), text.size() + 1);
  const descriptor fd{::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0)};
  if (fd.get() < 0) {
    unreachable(path, errno);
  }
  const auto deadline = std::chrono::steady_clock::now() + exchange_limit;
  // NOLINTNEXTLINE(cppcoreguidelines-pro-type-reinterpret-cast): the sockets API
  if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0) {
    if (errno != EINPROGRESS && errno != EAGAIN) {
      unreachable(path, errno);
    }
    wait_for(fd.get(), POLLOUT, deadline, path);
  }
  const auto request = control::encode_request({command});
  std::size_t sent = 0;
  while (sent < request.size()) {
    const auto n = ::send(fd.get(), request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
    if (n > 0) {
      sent += static_cast<std::size_t>(n);
    } else if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
      wait_for(fd.get(), POLLOUT, deadline, path);
    } else {
      unreachable(path, errno);
    }
  }
  // The reply runs until the daemon closes the connection.
  std::string reply;
  char buffer[65536];
  for (;;) {
    const auto n = ::recv(fd.get(), buffer, sizeof buffer, 0);
    if (n > 0) {
      reply.append(buffer, static_cast<std::size_t>(n));
      if (reply.size() > control::max_reply_bytes) {
        throw command_error{exit_status::failure,
                            "gate46d's reply is larger than " + std::to_string(control::max_reply_bytes) + " bytes"};
      }
    } else if (n == 0) {
      break;
    } else if (errno == EAGAIN || errno == EINTR) {
      wait_for(fd.get(), POLLIN, deadline, path);
    } else {
      unreachable(path, errno);
    }
  }
  if (reply.empty()) {
    throw command_error{exit_status::daemon_unreachable, "gate46d closed " + path.string() + " without an answer"};
  }
  try {
    auto decoded = control::decode_reply(reply);
    if (const auto* error = std::get_if<control::error_reply>(&decoded)) {
      throw command_error{exit_status::failure, "gate46d: " + error->message};
    }
    return decoded;
  } catch (const control::control_error& e) {
    throw command_error{exit_status::failure, std::string{"unreadable reply from gate46d: "} + e.what()};
  }
}

template <typename T>
const T& expect(const control::reply& reply) {
  if (const auto* value = std::get_if<T>(&reply)) {
    return *value;
  }
  throw command_error{exit_status::failure, "gate46d answered another question"};
}

void print(const std::string& text) {
  std::fputs(text.c_str(), stdout);
}

void print_json(const control::reply& reply) {
  print(nlohmann::ordered_json::parse(control::encode_reply(reply)).dump(2) + '\n');
}

}  // namespace

void live_status(const global_options& global, const std::optional<std::filesystem::path>& socket, bool json) {
  const auto reply = exchange(socket_path(global, socket), control::command::status);
  const auto& status = expect<control::status_reply>(reply);
  json ? print_json(reply) : print(status_text(status));
}

void live_flows(const global_options& global, const std::optional<std::filesystem::path>& socket, bool json) {
  const auto reply = exchange(socket_path(global, socket), control::command::flows);
  const auto& flows = expect<std::vector<control::flow_entry>>(reply);
  json ? print_json(reply) : print(flows_table(flows));
}

void live_stats(const global_options& global, const std::optional<std::filesystem::path>& socket, bool json) {
  const auto reply = exchange(socket_path(global, socket), control::command::stats);
  const auto& stats = expect<control::stats_reply>(reply);
  json ? print_json(reply) : print(stats_text(stats));
}

}  // namespace gate46::ctl
