#include "control_server.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <stdexcept>
#include <string>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/streambuf.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include "gate46/common/log.hpp"

namespace gate46::gateway {
namespace asio = boost::asio;
using local_stream = asio::local::stream_protocol;

namespace {

constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);
// A client that has not sent its request line by then is dropped.
constexpr std::chrono::seconds request_deadline{5};
// Nor may it take longer than this to read the reply (a stuck gate46ctl must not pin a slot).
constexpr std::chrono::seconds reply_deadline{30};

// Whether a daemon answers on `path` now.
bool answered(const std::filesystem::path& path) {
  local_stream::socket probe{asio::system_executor{}};
  boost::system::error_code ec;
  probe.connect(local_stream::endpoint{path.string()}, ec);
  return !ec;
}

class client_slot {
 public:
  explicit client_slot(std::shared_ptr<std::atomic<std::size_t>> count) : count_{std::move(count)} {}
  client_slot(const client_slot&) = delete;
  client_slot& operator=(const client_slot&) = delete;
  ~client_slot() { --*count_; }

 private:
  std::shared_ptr<std::atomic<std::size_t>> count_;
};

// A named coroutine with by-value parameters (g++ 12 and lambda coroutine captures).
asio::awaitable<void> serve(local_stream::socket client, control_server::answer_fn answer,
                            std::shared_ptr<std::atomic<std::size_t>> clients) {
  using namespace asio::experimental::awaitable_operators;
  const client_slot slot{std::move(clients)};
  asio::steady_timer deadline{client.get_executor(), request_deadline};
  asio::streambuf buffer{control::max_request_bytes + 1};
  auto read = [&]() -> asio::awaitable<std::tuple<boost::system::error_code, std::size_t>> {
    co_return co_await asio::async_read_until(client, buffer, '\n', use_tuple);
  };
  const auto first = co_await (read() || deadline.async_wait(use_tuple));
  if (first.index() == 1) {
    co_return;  // too slow
  }
  const auto [ec, length] = std::get<0>(first);
  control::reply reply;
  if (ec == asio::error::not_found) {
    reply = control::error_reply{"request longer than " + std::to_string(control::max_request_bytes) + " bytes"};
  } else if (ec) {
    co_return;  // the client went away
  } else {
    const std::string line{asio::buffers_begin(buffer.data()),
                           asio::buffers_begin(buffer.data()) + static_cast<std::ptrdiff_t>(length)};
    try {
      reply = answer(control::decode_request(line));
    } catch (const control::control_error& e) {
      reply = control::error_reply{std::string{"bad request: "} + e.what()};
    }
  }
  const auto text = control::encode_reply(reply);
  deadline.expires_after(reply_deadline);
  auto write = [&]() -> asio::awaitable<std::tuple<boost::system::error_code, std::size_t>> {
    co_return co_await asio::async_write(client, asio::buffer(text), use_tuple);
  };
  co_await (write() || deadline.async_wait(use_tuple));
}

asio::awaitable<void> accept_loop(std::shared_ptr<local_stream::acceptor> acceptor, control_server::answer_fn answer,
                                  std::shared_ptr<std::atomic<std::size_t>> clients) {
  log_throttle busy_log{std::chrono::seconds{10}};
  for (;;) {
    auto [ec, client] = co_await acceptor->async_accept(use_tuple);
    if (ec == asio::error::operation_aborted || !acceptor->is_open()) {
      co_return;
    }
    if (ec) {
      asio::steady_timer pause{acceptor->get_executor(), std::chrono::milliseconds{100}};
      co_await pause.async_wait(use_tuple);
      continue;
    }
    if (clients->load() >= control_server::max_clients) {
      if (busy_log.allow()) {
        logger("control")->warn("{} control clients at once: closing new ones", control_server::max_clients);
      }
      continue;  // closed as it goes out of scope
    }
    ++*clients;
    asio::co_spawn(acceptor->get_executor(), serve(std::move(client), answer, clients), asio::detached);
  }
}

}  // namespace

control_server::control_server(asio::io_context& control, std::filesystem::path path, answer_fn answer)
    : control_{control}, path_{std::move(path)}, answer_{std::move(answer)} {}

control_server::~control_server() {
  close();
}

void control_server::open(std::optional<uid_t> owner, std::optional<gid_t> group) {
  std::error_code ec;
  const auto status = std::filesystem::symlink_status(path_, ec);
  if (!ec && std::filesystem::exists(status)) {
    if (status.type() != std::filesystem::file_type::socket) {
      throw std::runtime_error{"control.socket " + path_.string() + " exists and is not a socket"};
    }
    if (answered(path_)) {
      throw std::runtime_error{"control.socket " + path_.string() +
                               " is in use by a running gate46d (a second instance needs its own control.socket)"};
    }
    std::filesystem::remove(path_, ec);  // stale: its daemon is gone
  }
  // Created 0660 from the start, not chmod-ed after: no moment where others may connect.
  const auto old_mask = ::umask(0117);
  auto acceptor = std::make_shared<local_stream::acceptor>(control_);
  boost::system::error_code bind_error;
  acceptor->open(local_stream{}, bind_error);
  if (!bind_error) {
    acceptor->bind(local_stream::endpoint{path_.string()}, bind_error);
  }
  ::umask(old_mask);
  if (!bind_error) {
    acceptor->listen(asio::socket_base::max_listen_connections, bind_error);
  }
  if (bind_error) {
    throw std::runtime_error{"cannot listen on control.socket " + path_.string() + ": " + bind_error.message()};
  }
  if ((owner || group) &&
      ::chown(path_.c_str(), owner.value_or(static_cast<uid_t>(-1)), group.value_or(static_cast<gid_t>(-1))) != 0) {
    // Still usable by root and by the daemon's own user and group; worth saying, not fatal.
    logger("control")->warn("cannot give control.socket {} to group gate46: {}", path_.string(),
                            std::generic_category().message(errno));
  }
  acceptor_ = std::move(acceptor);
}

void control_server::start() {
  if (acceptor_) {
    asio::co_spawn(control_, accept_loop(acceptor_, answer_, clients_), asio::detached);
  }
}

void control_server::close() {
  if (!acceptor_) {
    return;
  }
  boost::system::error_code ignored;
  acceptor_->close(ignored);
  acceptor_.reset();
  std::error_code ec;
  std::filesystem::remove(path_, ec);
}

}  // namespace gate46::gateway
