// The SOCKS5 (RFC 1928) and RFC 1929 codec: every parser on whole messages, on the same bytes
// one at a time (every strict prefix is need_more), with bytes after the message left alone,
// and on every malformed message; the reply builders byte for byte.
#include "gate46/gateway/socks5.hpp"

#include <gtest/gtest.h>

#include <array>
#include <cerrno>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace gate46::gateway::socks5 {
namespace {

// ---- helpers ------------------------------------------------------------------------------------

bytes concat(std::initializer_list<byte_view> parts) {
  bytes out;
  for (const auto part : parts) {
    out.insert(out.end(), part.begin(), part.end());
  }
  return out;
}

bytes text_bytes(std::string_view text) {
  return {text.begin(), text.end()};
}

// Bytes a pipelining client may send right after the message: they belong to the next one.
constexpr std::array<std::uint8_t, 4> trailing = {0x05, 0x01, 0x00, 0x01};

template <typename T>
bool is_need_more(const parse_result<T>& result) {
  return std::holds_alternative<need_more>(result);
}

template <typename T>
std::string describe(const parse_result<T>& result) {
  if (std::holds_alternative<need_more>(result)) {
    return "need_more";
  }
  if (const auto* p = std::get_if<parsed<T>>(&result)) {
    return "parsed, consumed " + std::to_string(p->consumed);
  }
  const auto& m = std::get<malformed>(result);
  return "malformed (" + m.why + "), reply " +
         (m.reply ? std::to_string(static_cast<int>(*m.reply)) : std::string{"none"});
}

// Parses `message` whole, byte by byte (each strict prefix must be need_more, never malformed)
// and followed by trailing bytes (left unconsumed, same value). Returns the whole-message value.
template <typename T>
T parse_whole(parse_result<T> (*parse)(byte_view), const bytes& message, bool (*same)(const T&, const T&)) {
  const byte_view all{message};
  for (std::size_t n = 0; n < message.size(); ++n) {
    const auto prefix = parse(all.first(n));
    EXPECT_TRUE(is_need_more(prefix)) << "prefix of " << n << " of " << message.size()
                                      << " bytes: " << describe(prefix);
  }
  const auto whole = parse(all);
  const auto* p = std::get_if<parsed<T>>(&whole);
  EXPECT_NE(p, nullptr) << describe(whole);
  if (p == nullptr) {
    return T{};
  }
  EXPECT_EQ(p->consumed, message.size());

  const auto longer = concat({message, trailing});
  const auto with_trailing = parse(longer);
  const auto* q = std::get_if<parsed<T>>(&with_trailing);
  EXPECT_NE(q, nullptr) << describe(with_trailing);
  if (q != nullptr) {
    EXPECT_EQ(q->consumed, message.size()) << "bytes after the message must be left unconsumed";
    EXPECT_TRUE(same(q->value, p->value));
  }
  return p->value;
}

// The whole message is malformed; every strict prefix is need_more or (once the bad byte is in)
// malformed with the same reply, never parsed.
template <typename T>
malformed parse_malformed(parse_result<T> (*parse)(byte_view), const bytes& message) {
  const byte_view all{message};
  const auto whole = parse(all);
  const auto* m = std::get_if<malformed>(&whole);
  EXPECT_NE(m, nullptr) << describe(whole);
  if (m == nullptr) {
    return malformed{};
  }
  EXPECT_FALSE(m->why.empty());
  for (std::size_t n = 0; n < message.size(); ++n) {
    const auto prefix = parse(all.first(n));
    EXPECT_FALSE((std::holds_alternative<parsed<T>>(prefix))) << "prefix of " << n << ": " << describe(prefix);
    if (const auto* early = std::get_if<malformed>(&prefix)) {
      EXPECT_EQ(early->reply, m->reply) << "prefix of " << n;
    }
  }
  // Whatever follows does not make it valid.
  const auto longer = concat({message, trailing});
  const auto with_trailing = parse(longer);
  const auto* again = std::get_if<malformed>(&with_trailing);
  EXPECT_NE(again, nullptr) << describe(with_trailing);
  if (again != nullptr) {
    EXPECT_EQ(again->reply, m->reply);
  }
  return *m;
}

bool same_greeting(const greeting& a, const greeting& b) {
  return a.methods == b.methods;
}
bool same_credentials(const credentials& a, const credentials& b) {
  return a.username == b.username && a.password == b.password;
}
bool same_request(const request& a, const request& b) {
  return a.command == b.command && a.destination.host == b.destination.host && a.destination.port == b.destination.port;
}

greeting parse_greeting_ok(const bytes& message) {
  return parse_whole(&parse_greeting, message, &same_greeting);
}
credentials parse_credentials_ok(const bytes& message) {
  return parse_whole(&parse_credentials, message, &same_credentials);
}
request parse_request_ok(const bytes& message) {
  return parse_whole(&parse_request, message, &same_request);
}

ip_address addr(std::string_view text) {
  auto parsed = ip_address::parse(text);
  EXPECT_TRUE(parsed) << text;
  return parsed.value_or(ip_address{});
}

dns_name name(std::string_view text) {
  auto parsed = dns_name::parse(text);
  EXPECT_TRUE(parsed) << text;
  return parsed.value_or(dns_name{});
}

// A CONNECT request for a domain given as text.
bytes domain_request(std::string_view domain, std::uint16_t port = 80) {
  bytes out = {0x05,                                       // VER
               0x01,                                       // CMD: CONNECT
               0x00,                                       // RSV
               0x03,                                       // ATYP: DOMAINNAME
               static_cast<std::uint8_t>(domain.size())};  // length
  out.insert(out.end(), domain.begin(), domain.end());
  out.push_back(static_cast<std::uint8_t>(port >> 8));  // DST.PORT
  out.push_back(static_cast<std::uint8_t>(port & 0xff));
  return out;
}

// Text of dot-separated labels of the given lengths ("aaa.bbbb"), optionally with the root's dot.
std::string labels(std::initializer_list<std::size_t> sizes, bool absolute = false) {
  std::string text;
  char fill = 'a';
  for (const auto size : sizes) {
    if (!text.empty()) {
      text.push_back('.');
    }
    text.append(size, fill);
    fill = fill == 'z' ? 'a' : static_cast<char>(fill + 1);
  }
  if (absolute) {
    text.push_back('.');
  }
  return text;
}

// RFC 1929 credentials with the given fields.
bytes auth_request(std::string_view user, std::string_view password) {
  bytes out = {0x01,                                          // VER
               static_cast<std::uint8_t>(user.size())};       // ULEN
  out.insert(out.end(), user.begin(), user.end());            // UNAME
  out.push_back(static_cast<std::uint8_t>(password.size()));  // PLEN
  out.insert(out.end(), password.begin(), password.end());    // PASSWD
  return out;
}

// ---- greeting -----------------------------------------------------------------------------------

TEST(socks5_greeting, parses_one_method) {
  const auto g = parse_greeting_ok({0x05,    // VER
                                    0x01,    // NMETHODS
                                    0x00});  // no authentication
  EXPECT_EQ(g.methods, (std::vector<std::uint8_t>{0x00}));
}

TEST(socks5_greeting, parses_methods_as_offered_unknown_ones_included) {
  const auto g = parse_greeting_ok({0x05,                      // VER
                                    0x04,                      // NMETHODS
                                    0x02, 0x80, 0x00, 0x02});  // user/pass, private, none, user/pass again
  EXPECT_EQ(g.methods, (std::vector<std::uint8_t>{0x02, 0x80, 0x00, 0x02}));
}

TEST(socks5_greeting, parses_255_methods) {
  bytes message = {0x05,   // VER
                   0xff};  // NMETHODS: 255
  for (int i = 0; i < 255; ++i) {
    message.push_back(static_cast<std::uint8_t>(i));
  }
  const auto g = parse_greeting_ok(message);
  ASSERT_EQ(g.methods.size(), 255U);
  EXPECT_EQ(g.methods.front(), 0x00);
  EXPECT_EQ(g.methods.back(), 0xfe);
}

TEST(socks5_greeting, empty_input_needs_more) {
  EXPECT_TRUE(is_need_more(parse_greeting({})));
}

TEST(socks5_greeting, truncated_needs_more) {
  const bytes message = {0x05, 0x03, 0x00, 0x01};  // three methods announced, two sent
  EXPECT_TRUE(is_need_more(parse_greeting(message)));
}

TEST(socks5_greeting, wrong_version_is_malformed_without_reply) {
  const auto m = parse_malformed(&parse_greeting, {0x04,    // VER: SOCKS4
                                                   0x01,    // NMETHODS
                                                   0x00});  // no authentication
  EXPECT_FALSE(m.reply);
  // Detected on the first byte: no need to wait for more from a SOCKS4 client.
  EXPECT_TRUE(std::holds_alternative<malformed>(parse_greeting(bytes{0x04})));
}

TEST(socks5_greeting, version_zero_and_http_are_malformed) {
  EXPECT_FALSE(parse_malformed(&parse_greeting, {0x00, 0x01, 0x00}).reply);
  EXPECT_FALSE(parse_malformed(&parse_greeting, text_bytes("GET / HTTP/1.1\r\n")).reply);
}

TEST(socks5_greeting, no_methods_is_malformed) {
  const auto m = parse_malformed(&parse_greeting, {0x05,    // VER
                                                   0x00});  // NMETHODS: 0
  EXPECT_FALSE(m.reply);
}

// ---- choose_method ------------------------------------------------------------------------------

greeting offering(std::initializer_list<std::uint8_t> methods) {
  return greeting{std::vector<std::uint8_t>(methods)};
}

TEST(socks5_choose_method, password_required_and_offered) {
  EXPECT_EQ(choose_method(offering({0x02}), true), method::username_password);
  EXPECT_EQ(choose_method(offering({0x00, 0x02}), true), method::username_password);
  EXPECT_EQ(choose_method(offering({0x02, 0x00}), true), method::username_password);
}

TEST(socks5_choose_method, password_required_but_not_offered) {
  EXPECT_EQ(choose_method(offering({0x00}), true), method::none_acceptable);
  EXPECT_EQ(choose_method(offering({0x01}), true), method::none_acceptable);  // GSSAPI: not supported
  EXPECT_EQ(choose_method(offering({0x00, 0x01, 0x80}), true), method::none_acceptable);
}

TEST(socks5_choose_method, no_auth_allowed_and_offered) {
  EXPECT_EQ(choose_method(offering({0x00}), false), method::no_auth);
  EXPECT_EQ(choose_method(offering({0x02, 0x00}), false), method::no_auth);
  EXPECT_EQ(choose_method(offering({0x00, 0x02}), false), method::no_auth);
}

TEST(socks5_choose_method, no_auth_allowed_but_only_password_offered) {
  // The header's rule: no authentication when allowed *and offered*, else 0xFF.
  EXPECT_EQ(choose_method(offering({0x02}), false), method::none_acceptable);
}

TEST(socks5_choose_method, nothing_acceptable) {
  EXPECT_EQ(choose_method(offering({0x01}), false), method::none_acceptable);
  EXPECT_EQ(choose_method(offering({0x03, 0x7f, 0x80, 0xfe}), false), method::none_acceptable);
  EXPECT_EQ(choose_method(offering({0xff}), false), method::none_acceptable);
  EXPECT_EQ(choose_method(offering({0xff}), true), method::none_acceptable);
  EXPECT_EQ(choose_method(offering({}), false), method::none_acceptable);
  EXPECT_EQ(choose_method(offering({}), true), method::none_acceptable);
}

TEST(socks5_choose_method, duplicates_and_unknown_methods_are_ignored) {
  EXPECT_EQ(choose_method(offering({0x80, 0x00, 0x00, 0xfe}), false), method::no_auth);
  EXPECT_EQ(choose_method(offering({0x80, 0x02, 0x02, 0xfe}), true), method::username_password);
  EXPECT_EQ(choose_method(offering({0xff, 0x00}), false), method::no_auth);
}

TEST(socks5_choose_method, selection_bytes) {
  EXPECT_EQ(make_method_selection(method::no_auth), (bytes{0x05, 0x00}));            // VER, METHOD
  EXPECT_EQ(make_method_selection(method::username_password), (bytes{0x05, 0x02}));  // VER, METHOD
  EXPECT_EQ(make_method_selection(method::none_acceptable), (bytes{0x05, 0xff}));    // VER, METHOD
}

// ---- RFC 1929 credentials -----------------------------------------------------------------------

TEST(socks5_credentials, parses) {
  const auto c = parse_credentials_ok({0x01,                     // VER
                                       0x05,                     // ULEN
                                       'a', 'l', 'i', 'c', 'e',  // UNAME
                                       0x03,                     // PLEN
                                       's', '3', 'k'});          // PASSWD
  EXPECT_EQ(c.username, "alice");
  EXPECT_EQ(c.password, "s3k");
}

TEST(socks5_credentials, parses_one_byte_fields_and_arbitrary_bytes) {
  const auto c = parse_credentials_ok({0x01,          // VER
                                       0x01,          // ULEN
                                       'u',           // UNAME
                                       0x02,          // PLEN
                                       0xff, 0x01});  // PASSWD: any byte but NUL
  EXPECT_EQ(c.username, "u");
  EXPECT_EQ(c.password, std::string("\xff\x01"));
}

TEST(socks5_credentials, parses_255_byte_fields) {
  const std::string user(255, 'u');
  const std::string password(255, 'p');
  const auto c = parse_credentials_ok(auth_request(user, password));
  EXPECT_EQ(c.username, user);
  EXPECT_EQ(c.password, password);
}

TEST(socks5_credentials, empty_input_needs_more) {
  EXPECT_TRUE(is_need_more(parse_credentials({})));
}

TEST(socks5_credentials, truncated_needs_more) {
  const auto message = auth_request("alice", "secret");
  for (std::size_t n = 0; n < message.size(); ++n) {
    EXPECT_TRUE(is_need_more(parse_credentials(byte_view{message}.first(n)))) << n;
  }
}

TEST(socks5_credentials, wrong_sub_negotiation_version_is_malformed) {
  auto message = auth_request("alice", "secret");
  message[0] = 0x05;  // VER: the SOCKS version instead of RFC 1929's 1
  parse_malformed(&parse_credentials, message);
  message[0] = 0x00;
  parse_malformed(&parse_credentials, message);
  message[0] = 0x02;
  parse_malformed(&parse_credentials, message);
}

TEST(socks5_credentials, empty_username_is_malformed) {
  parse_malformed(&parse_credentials, {0x01,             // VER
                                       0x00,             // ULEN: 0
                                       0x03,             // PLEN
                                       's', '3', 'k'});  // PASSWD
}

TEST(socks5_credentials, empty_password_is_malformed) {
  parse_malformed(&parse_credentials, {0x01,                     // VER
                                       0x05,                     // ULEN
                                       'a', 'l', 'i', 'c', 'e',  // UNAME
                                       0x00});                   // PLEN: 0
}

TEST(socks5_credentials, nul_in_username_is_malformed) {
  parse_malformed(&parse_credentials, {0x01,                                // VER
                                       0x03,                                // ULEN
                                       'a', 0x00, 'b',                      // UNAME with a NUL
                                       0x02,                                // PLEN
                                       'p', 'w'});                          // PASSWD
  parse_malformed(&parse_credentials, {0x01, 0x01, 0x00, 0x02, 'p', 'w'});  // UNAME is just NUL
}

TEST(socks5_credentials, nul_in_password_is_malformed) {
  parse_malformed(&parse_credentials, {0x01,              // VER
                                       0x01,              // ULEN
                                       'u',               // UNAME
                                       0x03,              // PLEN
                                       'p', 'w', 0x00});  // PASSWD ending in NUL
}

TEST(socks5_credentials, status_bytes) {
  EXPECT_EQ(make_auth_status(true), (bytes{0x01, 0x00}));  // VER, STATUS: success
  const auto failure = make_auth_status(false);
  ASSERT_EQ(failure.size(), 2U);
  EXPECT_EQ(failure[0], 0x01);  // VER
  EXPECT_NE(failure[1], 0x00);  // STATUS: failure
}

// ---- requests -----------------------------------------------------------------------------------

TEST(socks5_request, parses_ipv4) {
  const auto r = parse_request_ok({0x05,          // VER
                                   0x01,          // CMD: CONNECT
                                   0x00,          // RSV
                                   0x01,          // ATYP: IPv4
                                   192, 0, 2, 1,  // DST.ADDR
                                   0x01, 0xbb});  // DST.PORT: 443
  EXPECT_EQ(r.command, static_cast<std::uint8_t>(command::connect));
  const auto* address = std::get_if<ip_address>(&r.destination.host);
  ASSERT_NE(address, nullptr);
  EXPECT_TRUE(address->is_v4());
  EXPECT_EQ(*address, ip_address::from_v4({192, 0, 2, 1}));
  EXPECT_EQ(r.destination.port, 443);
}

TEST(socks5_request, parses_ipv6) {
  const auto r =
      parse_request_ok({0x05,                                                           // VER
                        0x01,                                                           // CMD: CONNECT
                        0x00,                                                           // RSV
                        0x04,                                                           // ATYP: IPv6
                        0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01,  // DST.ADDR: 2001:db8::1
                        0x00, 0x50});                                                   // DST.PORT: 80
  const auto* address = std::get_if<ip_address>(&r.destination.host);
  ASSERT_NE(address, nullptr);
  EXPECT_TRUE(address->is_v6());
  EXPECT_EQ(*address, addr("2001:db8::1"));
  EXPECT_EQ(r.destination.port, 80);
}

TEST(socks5_request, v4_mapped_ipv6_is_the_ipv4_address) {
  // ip_address keeps IPv4 as v4-mapped, so ATYP 4 ::ffff:192.0.2.1 is 192.0.2.1 (address.hpp):
  // the deny-list sees one form.
  const auto r =
      parse_request_ok({0x05,                                                         // VER
                        0x01,                                                         // CMD: CONNECT
                        0x00,                                                         // RSV
                        0x04,                                                         // ATYP: IPv6
                        0,    0,   0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 192, 0, 2, 1,  // DST.ADDR: ::ffff:192.0.2.1
                        0x00, 0x50});                                                 // DST.PORT: 80
  const auto* address = std::get_if<ip_address>(&r.destination.host);
  ASSERT_NE(address, nullptr);
  EXPECT_TRUE(address->is_v4());
  EXPECT_EQ(*address, ip_address::from_v4({192, 0, 2, 1}));
  EXPECT_EQ(r.destination.to_string(), "192.0.2.1:80");
}

TEST(socks5_request, parses_domain_lower_cased) {
  const auto r =
      parse_request_ok({0x05,                                                                 // VER
                        0x01,                                                                 // CMD: CONNECT
                        0x00,                                                                 // RSV
                        0x03,                                                                 // ATYP: DOMAINNAME
                        0x0b,                                                                 // length: 11
                        'E', 'x', 'a', 'm', 'p', 'l', 'e', '.', 'C', 'O', 'M', 0x1f, 0x90});  // DST.PORT: 8080
  const auto* host = std::get_if<dns_name>(&r.destination.host);
  ASSERT_NE(host, nullptr);
  EXPECT_EQ(*host, name("example.com"));
  EXPECT_EQ(r.destination.port, 8080);
}

TEST(socks5_request, port_is_big_endian) {
  const auto port_of = [](std::uint8_t high, std::uint8_t low) {
    return parse_request_ok({0x05, 0x01, 0x00, 0x01,  // VER, CMD, RSV, ATYP: IPv4
                             10, 0, 0, 1,             // DST.ADDR
                             high, low})              // DST.PORT
        .destination.port;
  };
  EXPECT_EQ(port_of(0x12, 0x34), 0x1234);
  EXPECT_EQ(port_of(0x00, 0x01), 1);
  EXPECT_EQ(port_of(0x01, 0x00), 256);
  EXPECT_EQ(port_of(0xff, 0xff), 65535);
  EXPECT_EQ(port_of(0x00, 0x00), 0);  // the codec keeps it; refusing port 0 is policy
}

TEST(socks5_request, unknown_commands_are_parsed_with_the_raw_byte) {
  for (const std::uint8_t cmd :
       {std::uint8_t{0x02}, std::uint8_t{0x03}, std::uint8_t{0x00}, std::uint8_t{0x04}, std::uint8_t{0xff}}) {
    const auto r = parse_request_ok({0x05,          // VER
                                     cmd,           // CMD: BIND, UDP ASSOCIATE, or unknown
                                     0x00,          // RSV
                                     0x01,          // ATYP: IPv4
                                     192, 0, 2, 1,  // DST.ADDR
                                     0x00, 0x50});  // DST.PORT
    EXPECT_EQ(r.command, cmd);
  }
}

TEST(socks5_request, nonzero_reserved_byte_is_accepted) {
  // RFC 1928 says RSV must be X'00' but gives no reply for it; the implementation ignores it.
  const auto r = parse_request_ok({0x05,          // VER
                                   0x01,          // CMD: CONNECT
                                   0x7f,          // RSV: nonzero
                                   0x01,          // ATYP: IPv4
                                   192, 0, 2, 1,  // DST.ADDR
                                   0x00, 0x50});  // DST.PORT
  EXPECT_EQ(r.destination.to_string(), "192.0.2.1:80");
}

TEST(socks5_request, empty_input_needs_more) {
  EXPECT_TRUE(is_need_more(parse_request({})));
}

TEST(socks5_request, truncated_needs_more) {
  const std::vector<bytes> truncated = {
      {0x05, 0x01, 0x00},                                   // no ATYP yet
      {0x05, 0x01, 0x00, 0x01, 192, 0, 2},                  // IPv4 short an address byte
      {0x05, 0x01, 0x00, 0x01, 192, 0, 2, 1, 0x00},         // IPv4 short a port byte
      {0x05, 0x01, 0x00, 0x04, 0x20, 0x01},                 // IPv6 address cut
      {0x05, 0x01, 0x00, 0x03},                             // no domain length
      {0x05, 0x01, 0x00, 0x03, 0x03, 'a', 'b'},             // domain cut
      {0x05, 0x01, 0x00, 0x03, 0x03, 'a', 'b', 'c', 0x00},  // port cut
  };
  for (const auto& message : truncated) {
    const auto result = parse_request(message);
    EXPECT_TRUE(is_need_more(result)) << message.size() << " bytes: " << describe(result);
  }
}

TEST(socks5_request, wrong_version_is_malformed_without_reply) {
  const auto m = parse_malformed(&parse_request, {0x04,          // VER: SOCKS4
                                                  0x01,          // CMD
                                                  0x00,          // RSV
                                                  0x01,          // ATYP
                                                  192, 0, 2, 1,  // DST.ADDR
                                                  0x00, 0x50});  // DST.PORT
  EXPECT_FALSE(m.reply);
}

TEST(socks5_request, unknown_address_type_is_malformed_with_reply_08) {
  for (const std::uint8_t atyp : {std::uint8_t{0x00}, std::uint8_t{0x02}, std::uint8_t{0x05}, std::uint8_t{0xff}}) {
    const auto m = parse_malformed(&parse_request, {0x05,          // VER
                                                    0x01,          // CMD
                                                    0x00,          // RSV
                                                    atyp,          // ATYP: unknown
                                                    192, 0, 2, 1,  // whatever follows
                                                    0x00, 0x50});
    EXPECT_EQ(m.reply, reply_code::address_type_not_supported) << static_cast<int>(atyp);
  }
}

TEST(socks5_request, empty_domain_is_malformed_with_reply_01) {
  const auto m = parse_malformed(&parse_request, {0x05,          // VER
                                                  0x01,          // CMD
                                                  0x00,          // RSV
                                                  0x03,          // ATYP: DOMAINNAME
                                                  0x00,          // length: 0
                                                  0x00, 0x50});  // DST.PORT
  EXPECT_EQ(m.reply, reply_code::general_failure);
}

TEST(socks5_request, nul_in_domain_is_malformed_with_reply_01) {
  using namespace std::string_view_literals;
  for (const auto domain : {"a\0b.example"sv, "example.com\0"sv, "\0example.com"sv, "\0"sv}) {
    ASSERT_NE(domain.find('\0'), std::string_view::npos);
    const auto m = parse_malformed(&parse_request, domain_request(domain));
    EXPECT_EQ(m.reply, reply_code::general_failure);
  }
}

TEST(socks5_request, invalid_domains_are_malformed_with_reply_01) {
  for (const std::string& domain :
       {std::string{"a..b"}, std::string{".example"}, std::string{".."}, labels({64, 3}),  // a label over 63 bytes
        std::string(255, 'a'),                                                             // one label of 255
        std::string{"a\\.b"},  // presentation escapes are not SOCKS text
        std::string{"\\065bc"}}) {
    const auto m = parse_malformed(&parse_request, domain_request(domain));
    EXPECT_EQ(m.reply, reply_code::general_failure) << domain;
  }
}

TEST(socks5_request, domain_length_boundaries) {
  // The longest textual name: 253 bytes (wire form 255 = 1 + 63 + 1 + 63 + 1 + 63 + 1 + 61 + 1).
  const auto longest = labels({63, 63, 63, 61});
  ASSERT_EQ(longest.size(), 253U);
  const auto r = parse_request_ok(domain_request(longest, 443));
  const auto* host = std::get_if<dns_name>(&r.destination.host);
  ASSERT_NE(host, nullptr);
  EXPECT_EQ(host->wire().size(), dns_name::max_wire_length);
  EXPECT_EQ(*host, name(longest));
  EXPECT_EQ(r.destination.port, 443);

  // The same with the root's dot: 254 bytes of text, still 255 of wire form.
  const auto absolute = labels({63, 63, 63, 61}, true);
  ASSERT_EQ(absolute.size(), 254U);
  EXPECT_EQ(std::get<dns_name>(parse_request_ok(domain_request(absolute)).destination.host), name(longest));

  // One byte more in a label: wire form 256, not a name.
  const auto too_long = labels({63, 63, 63, 62});
  ASSERT_EQ(too_long.size(), 254U);
  EXPECT_EQ(parse_malformed(&parse_request, domain_request(too_long)).reply, reply_code::general_failure);

  // 255 bytes of legal labels: wire form 257.
  const auto longest_field = labels({63, 63, 63, 63});
  ASSERT_EQ(longest_field.size(), 255U);
  EXPECT_EQ(parse_malformed(&parse_request, domain_request(longest_field)).reply, reply_code::general_failure);
}

TEST(socks5_request, one_byte_domain) {
  const auto r = parse_request_ok(domain_request("x", 22));
  EXPECT_EQ(std::get<dns_name>(r.destination.host), name("x"));
  EXPECT_EQ(r.destination.port, 22);
}

TEST(socks5_request, pipelined_requests_are_read_one_at_a_time) {
  const bytes first = {0x05, 0x01, 0x00, 0x01, 192, 0, 2, 1, 0x00, 0x50};
  const auto second = domain_request("example.org", 443);
  const auto both = concat({first, second});
  const auto r1 = parse_request(both);
  const auto* p1 = std::get_if<parsed<request>>(&r1);
  ASSERT_NE(p1, nullptr) << describe(r1);
  ASSERT_EQ(p1->consumed, first.size());
  const auto r2 = parse_request(byte_view{both}.subspan(p1->consumed));
  const auto* p2 = std::get_if<parsed<request>>(&r2);
  ASSERT_NE(p2, nullptr) << describe(r2);
  EXPECT_EQ(p2->consumed, second.size());
  EXPECT_EQ(p2->value.destination.to_string(), "example.org.:443");
}

// ---- replies ------------------------------------------------------------------------------------

TEST(socks5_reply, ipv4_bound_endpoint) {
  EXPECT_EQ(make_reply(reply_code::succeeded, endpoint{addr("192.0.2.7"), 0xc350}),
            (bytes{0x05,           // VER
                   0x00,           // REP: succeeded
                   0x00,           // RSV
                   0x01,           // ATYP: IPv4
                   192, 0, 2, 7,   // BND.ADDR
                   0xc3, 0x50}));  // BND.PORT: 50000
}

TEST(socks5_reply, v4_mapped_bound_endpoint_is_ipv4) {
  // A dual-stack socket reports its IPv4 local address v4-mapped: the reply says IPv4.
  EXPECT_EQ(make_reply(reply_code::succeeded, endpoint{addr("::ffff:192.0.2.3"), 1}),
            (bytes{0x05, 0x00, 0x00,  // VER, REP, RSV
                   0x01,              // ATYP: IPv4
                   192, 0, 2, 3,      // BND.ADDR
                   0x00, 0x01}));     // BND.PORT
}

TEST(socks5_reply, ipv6_bound_endpoint) {
  EXPECT_EQ(make_reply(reply_code::succeeded, endpoint{addr("2001:db8::2:1"), 0x1234}),
            (bytes{0x05,                                                              // VER
                   0x00,                                                              // REP: succeeded
                   0x00,                                                              // RSV
                   0x04,                                                              // ATYP: IPv6
                   0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x02, 0, 0x01,  // BND.ADDR
                   0x12, 0x34}));                                                     // BND.PORT
}

TEST(socks5_reply, carries_every_reply_code) {
  for (int code = 0; code <= 8; ++code) {
    const auto reply = make_reply(static_cast<reply_code>(code), endpoint{addr("192.0.2.1"), 80});
    ASSERT_EQ(reply.size(), 10U);
    EXPECT_EQ(reply[1], code);
  }
}

TEST(socks5_reply, failure_reply_is_all_zero_ipv4) {
  for (const auto code : {reply_code::general_failure, reply_code::not_allowed, reply_code::network_unreachable,
                          reply_code::host_unreachable, reply_code::connection_refused, reply_code::ttl_expired,
                          reply_code::command_not_supported, reply_code::address_type_not_supported}) {
    EXPECT_EQ(make_failure_reply(code), (bytes{0x05,                             // VER
                                               static_cast<std::uint8_t>(code),  // REP
                                               0x00,                             // RSV
                                               0x01,                             // ATYP: IPv4
                                               0, 0, 0, 0,                       // BND.ADDR: 0.0.0.0
                                               0, 0}));                          // BND.PORT: 0
  }
}

TEST(socks5_reply, code_for_errno) {
  EXPECT_EQ(reply_for_errno(ECONNREFUSED), reply_code::connection_refused);
  EXPECT_EQ(reply_for_errno(ENETUNREACH), reply_code::network_unreachable);
  EXPECT_EQ(reply_for_errno(EHOSTUNREACH), reply_code::host_unreachable);
  EXPECT_EQ(reply_for_errno(ETIMEDOUT), reply_code::ttl_expired);
  for (const int other : {0, EACCES, EPERM, ECONNRESET, EADDRNOTAVAIL, ECANCELED, -1, 100000}) {
    EXPECT_EQ(reply_for_errno(other), reply_code::general_failure) << other;
  }
}

// ---- target::to_string --------------------------------------------------------------------------

TEST(socks5_target, to_string) {
  EXPECT_EQ((target{addr("192.0.2.1"), 443}.to_string()), "192.0.2.1:443");
  EXPECT_EQ((target{addr("2001:db8::1"), 80}.to_string()), "[2001:db8::1]:80");
  // dns_name's presentation form is absolute, with its trailing dot.
  EXPECT_EQ((target{name("Example.COM"), 8080}.to_string()), "example.com.:8080");
  EXPECT_EQ((target{name("x"), 0}.to_string()), "x.:0");
}

// ---- UDP ASSOCIATE datagrams (RFC 1928 §7) -------------------------------------------------------

udp_header parse_udp_ok(const bytes& datagram) {
  auto result = parse_udp_header(datagram);
  if (const auto* why = std::get_if<std::string>(&result)) {
    ADD_FAILURE() << "malformed: " << *why;
    return {};
  }
  return std::get<udp_header>(std::move(result));
}

std::string parse_udp_error(const bytes& datagram) {
  auto result = parse_udp_header(datagram);
  if (std::holds_alternative<udp_header>(result)) {
    ADD_FAILURE() << "parsed, expected malformed";
    return {};
  }
  return std::get<std::string>(std::move(result));
}

TEST(socks5_udp, ipv4_destination_and_payload) {
  const bytes datagram{0, 0, 0, 0x01, 192, 0, 2, 53, 0, 53, 'h', 'i'};
  const auto h = parse_udp_ok(datagram);
  EXPECT_EQ(h.fragment, 0);
  EXPECT_EQ(std::get<ip_address>(h.destination.host), addr("192.0.2.53"));
  EXPECT_EQ(h.destination.port, 53);
  EXPECT_EQ(h.payload_offset, 10U);
}

TEST(socks5_udp, ipv6_and_v4_mapped_destinations) {
  bytes datagram{0, 0, 0, 0x04};
  const auto v6 = addr("2001:db8::35").v6_bytes();
  datagram.insert(datagram.end(), v6.begin(), v6.end());
  datagram.insert(datagram.end(), {0x01, 0xbb});
  auto h = parse_udp_ok(datagram);
  EXPECT_EQ(std::get<ip_address>(h.destination.host), addr("2001:db8::35"));
  EXPECT_EQ(h.destination.port, 443);
  EXPECT_EQ(h.payload_offset, datagram.size());  // an empty payload is a datagram too

  bytes mapped{0, 0, 0, 0x04, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 198, 51, 100, 7, 0, 7};
  h = parse_udp_ok(mapped);
  EXPECT_EQ(std::get<ip_address>(h.destination.host), addr("198.51.100.7"));
}

TEST(socks5_udp, domain_destination_and_the_name_zero_python_socks_sends) {
  auto datagram = concat({bytes{0, 0, 0, 0x03, 11}, text_bytes("example.com"), bytes{0x00, 0x35, 0xAA}});
  auto h = parse_udp_ok(datagram);
  EXPECT_EQ(std::get<dns_name>(h.destination.host), name("example.com"));
  EXPECT_EQ(h.destination.port, 53);
  EXPECT_EQ(h.payload_offset, datagram.size() - 1);
  // python3-socks (rdns) names its own address "0" in UDP ASSOCIATE; as a name it parses too.
  h = parse_udp_ok(concat({bytes{0, 0, 0, 0x03, 1}, text_bytes("0"), bytes{0, 0}}));
  EXPECT_EQ(std::get<dns_name>(h.destination.host), name("0"));
}

TEST(socks5_udp, fragments_are_reported_and_reserved_bytes_ignored) {
  const auto h = parse_udp_ok(bytes{0xff, 0xff, 0x81, 0x01, 192, 0, 2, 1, 0, 9});
  EXPECT_EQ(h.fragment, 0x81);  // the caller drops it: no reassembly
}

TEST(socks5_udp, short_or_bad_datagrams_are_malformed) {
  EXPECT_EQ(parse_udp_error(bytes{}), "datagram of 0 bytes: no SOCKS5 UDP header");
  EXPECT_EQ(parse_udp_error(bytes{0, 0}), "datagram of 2 bytes: no SOCKS5 UDP header");
  EXPECT_EQ(parse_udp_error(bytes{0, 0, 0}), "truncated SOCKS5 UDP header");
  EXPECT_EQ(parse_udp_error(bytes{0, 0, 0, 0x01, 192, 0, 2, 1, 0}), "truncated SOCKS5 UDP header");
  EXPECT_EQ(parse_udp_error(bytes{0, 0, 0, 0x04, 0x20, 0x01}), "truncated SOCKS5 UDP header");
  EXPECT_EQ(parse_udp_error(concat({bytes{0, 0, 0, 0x03, 12}, text_bytes("example.com")})),
            "truncated SOCKS5 UDP header");
  EXPECT_EQ(parse_udp_error(bytes{0, 0, 0, 0x02, 1, 2, 3, 4, 0, 1}), "address type 2");
  EXPECT_EQ(parse_udp_error(bytes{0, 0, 0, 0x03, 0, 0, 53}), "empty domain name");
  EXPECT_EQ(parse_udp_error(concat({bytes{0, 0, 0, 0x03, 3}, text_bytes("a\\b"), bytes{0, 53}})),
            "invalid domain name");
}

TEST(socks5_udp, reply_header_carries_the_source_the_client_used) {
  EXPECT_EQ(make_udp_header(target{addr("198.18.0.7"), 53}), (bytes{0, 0, 0, 0x01, 198, 18, 0, 7, 0, 53}));
  // An IPv4 client that sent to a name gets the reply from that name, whatever family answered.
  EXPECT_EQ(make_udp_header(target{name("v6only.gate46.test"), 5353}),
            concat({bytes{0, 0, 0, 0x03, 18}, text_bytes("v6only.gate46.test"), bytes{0x14, 0xe9}}));
  const auto v6 = make_udp_header(target{addr("2001:2::9"), 443});
  ASSERT_TRUE(v6.has_value());
  EXPECT_EQ(v6->size(), 3U + 1U + 16U + 2U);
  EXPECT_EQ((*v6)[3], 0x04);
  // What it builds parses back to the same target.
  for (const auto& t : {target{addr("192.0.2.1"), 1}, target{addr("2001:db8::1"), 65535}, target{name("a.b"), 7}}) {
    const auto header = make_udp_header(t);
    ASSERT_TRUE(header.has_value());
    const auto back = parse_udp_ok(*header);
    EXPECT_EQ(back.destination.to_string(), t.to_string());
    EXPECT_EQ(back.payload_offset, header->size());
  }
}

TEST(socks5_udp, names_go_as_the_bytes_the_client_wrote) {
  // The longest name (255 bytes on the wire) is 253 bytes of text: it fits.
  EXPECT_TRUE(make_udp_header(target{name(labels({63, 63, 63, 61})), 1}).has_value());
  // Unprintable bytes go unescaped, as they came, and parse back to the same name.
  const auto odd = concat({bytes{0, 0, 0, 0x03, 7},
                           text_bytes("a\x01"
                                      "b.c d"),
                           bytes{0, 9}});
  const auto h = parse_udp_ok(odd);
  EXPECT_EQ(make_udp_header(h.destination), odd);
  // A dot inside a label (possible in a DNS name, not in DOMAINNAME text): no header.
  const auto dotted = dns_name::parse("a\\.b.example");
  ASSERT_TRUE(dotted.has_value());
  EXPECT_FALSE(make_udp_header(target{*dotted, 1}).has_value());
}

}  // namespace
}  // namespace gate46::gateway::socks5
