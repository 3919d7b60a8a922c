// The control socket's codec on arbitrary bytes: what any local process may write to gate46d's
// socket, and what a daemon of another version may answer gate46ctl. For every input:
//   - decode_request and decode_reply decode it or throw control_error; nothing else escapes;
//   - a decoded request encodes to one line (a single '\n', at its end, within
//     max_request_bytes) that decodes, with or without its '\n', to the same request;
//   - a decoded reply encodes to text that decodes to the same reply and encodes identically
//     (its strings came out of JSON, so they are UTF-8 and the encoder replaces nothing);
//   - the input's raw bytes put in every string of every reply alternative (as a DNS name or a
//     SOCKS target may hold any bytes) encode to text the decoder accepts, and after the
//     encoder's one replacement of what is not UTF-8 the text is stable:
//     encode(decode(encode(x))) == encode(x).
// Any violation aborts; a control_error where a decode must succeed aborts too.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "gate46/common/control.hpp"

namespace control = gate46::control;

namespace {

void check(bool condition) {
  if (!condition) {
    std::abort();
  }
}

// For text the codec itself produced: rejecting it is a failure.
control::request must_decode_request(std::string_view line) {
  try {
    return control::decode_request(line);
  } catch (const control::control_error&) {
    std::abort();
  }
}

control::reply must_decode_reply(std::string_view text) {
  try {
    return control::decode_reply(text);
  } catch (const control::control_error&) {
    std::abort();
  }
}

void fuzz_request(std::string_view in) {
  std::optional<control::request> decoded;
  try {
    decoded = control::decode_request(in);
  } catch (const control::control_error& e) {
    check(*e.what() != '\0');  // says why
    return;
  }
  // Within the limit, not counting the line's '\n'.
  check(in.size() <= control::max_request_bytes || (in.size() == control::max_request_bytes + 1 && in.back() == '\n'));
  const auto line = control::encode_request(*decoded);
  check(line.size() <= control::max_request_bytes);
  check(!line.empty() && line.find('\n') == line.size() - 1);
  check(must_decode_request(line) == *decoded);
  check(must_decode_request(std::string_view{line}.substr(0, line.size() - 1)) == *decoded);
}

void fuzz_reply(std::string_view in) {
  std::optional<control::reply> decoded;
  try {
    decoded = control::decode_reply(in);
  } catch (const control::control_error& e) {
    check(*e.what() != '\0');
    return;
  }
  const auto text = control::encode_reply(*decoded);
  const auto again = must_decode_reply(text);
  check(again == *decoded);
  check(control::encode_reply(again) == text);
}

void fuzz_encoder(std::string_view in) {
  // A prefix is enough to reach every byte sequence, and keeps the many copies cheap.
  const std::string raw{in.substr(0, 256)};
  const control::reply replies[] = {
      control::error_reply{raw},
      control::status_reply{raw, -1, raw, raw, 1, 2, {raw, "dns", raw}, 3, 4},
      std::vector<control::flow_entry>{{raw, raw, raw, raw, raw, 1, 2, 3}, {"socks", raw, "x", "", raw, 4, 5, 6}},
      control::stats_reply{{{raw, {{raw, 5}}}, {"dns", {}}}, {{raw, 1, 2, 3, 4}}},
  };
  // ASCII (control bytes and NUL included) is UTF-8: nothing to replace, the reply comes back.
  const bool ascii = std::all_of(raw.begin(), raw.end(), [](char c) { return static_cast<unsigned char>(c) < 0x80; });
  for (const auto& x : replies) {
    const auto text = control::encode_reply(x);
    const auto back = must_decode_reply(text);
    check(back.index() == x.index());
    check(!ascii || back == x);
    const auto again = control::encode_reply(back);
    check(again == text);
    check(must_decode_reply(again) == back);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view in{reinterpret_cast<const char*>(data), size};
  fuzz_request(in);
  fuzz_reply(in);
  fuzz_encoder(in);
  return 0;
}
