// The address watcher's rtnetlink parsing on arbitrary datagrams: split into messages, then
// every decoder on every message. Lengths come from the datagram itself, so every one of them
// is checked before use; nothing may read outside the buffer.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>

#include "gate46/common/address_watcher.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::span<const std::byte> datagram{reinterpret_cast<const std::byte*>(data), size};
  const auto split = gate46::rtnetlink::split_datagram(datagram);
  for (const auto& message : split.messages) {
    if (message.data() < datagram.data() || message.data() + message.size() > datagram.data() + datagram.size()) {
      std::abort();  // a message must lie inside the datagram
    }
    (void)gate46::rtnetlink::decode_header(message);
    (void)gate46::rtnetlink::decode_status(message);
    if (const auto address = gate46::rtnetlink::decode_address_message(message)) {
      if (address->prefix_length > (address->address.is_v4() ? 32U : 128U)) {
        std::abort();
      }
    }
    (void)gate46::rtnetlink::decode_link_message(message);
  }
  return 0;
}
