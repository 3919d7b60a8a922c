// gate46d's end of the control socket (control.socket): a Unix stream socket, group gate46,
// mode 0660, answering gate46ctl's requests (gate46/common/control.hpp) one per connection.
//
// Only local processes that may open the socket get in (root and the gate46 group); still,
// nothing they send is trusted: a request is read with a size limit and a deadline, at most
// max_clients are served at once, and malformed input gets an error reply.
//
// Thread-safety: everything runs on the daemon's control thread, and so does the answer
// function; open()/start()/close() are called there too.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <cstddef>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>

#include <boost/asio/io_context.hpp>
#include <boost/asio/local/stream_protocol.hpp>

#include "gate46/common/control.hpp"

namespace gate46::gateway {

class control_server {
 public:
  using answer_fn = std::function<control::reply(const control::request&)>;

  control_server(boost::asio::io_context& control, std::filesystem::path path, answer_fn answer);
  control_server(const control_server&) = delete;
  control_server& operator=(const control_server&) = delete;
  ~control_server();

  // Binds the socket: replaces a stale socket file left by a crash, refuses (throws
  // std::runtime_error) when another daemon answers on it or the path is not a socket. The
  // socket file is mode 0660 and gets `owner` (a root start) and `group` (gate46) when given.
  void open(std::optional<uid_t> owner, std::optional<gid_t> group);
  void start();
  // Stops accepting and removes the socket file. An exchange in progress ends with the
  // control loop.
  void close();

  static constexpr std::size_t max_clients = 16;

 private:
  boost::asio::io_context& control_;
  std::filesystem::path path_;
  answer_fn answer_;
  std::shared_ptr<boost::asio::local::stream_protocol::acceptor> acceptor_;
  std::shared_ptr<std::atomic<std::size_t>> clients_ = std::make_shared<std::atomic<std::size_t>>(0);
};

}  // namespace gate46::gateway
