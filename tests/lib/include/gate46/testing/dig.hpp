// What dig and kdig print, read back: the reply header (status, flags), the question and the
// record sections of dig's output, and the record lines of either client's `+noall +answer`,
// for tests that query a DNS server with the real clients and compare what they saw.
//
// Records are kept in presentation form without their TTL ("www.gate46.test. IN A
// 203.0.113.20"), the TTL beside, and each section sorted (RRset order is not significant), so
// two replies compare with ==.
//
//   const auto r = client.run({"dig", "@192.0.2.1", "www.gate46.test", "A", "+noall", "+comments",
//                              "+question", "+answer", "+authority", "+additional"}, 15s);
//   const auto reply = parse_dig(r.out + r.err);
//   EXPECT_EQ(reply.status, "NOERROR");
//   EXPECT_TRUE(reply.flags.contains("qr"));
//   EXPECT_EQ(reply.answer_texts(), std::vector<std::string>{"www.gate46.test. IN A 203.0.113.20"});
//
// Pure functions over text; no state.
#pragma once

#include <cstdint>
#include <set>
#include <string>
#include <vector>

namespace gate46::testing {

// The whitespace-separated words of `line`.
std::vector<std::string> split_words(const std::string& line);
// The lines of `text`, without their '\n'.
std::vector<std::string> lines_of(const std::string& text);

// A record line without its TTL ("v4only.gate46.test. IN A 203.0.113.10"), and the TTL.
struct record_line {
  std::string text;
  std::uint32_t ttl = 0;
  friend bool operator<(const record_line& a, const record_line& b) { return a.text < b.text; }
};

// "owner TTL IN TYPE rdata..." -> the record without its TTL, and the TTL. A line of fewer than
// four words is kept whole as the text, TTL 0.
record_line record_of(const std::string& line);
// The texts of `records`, in their order.
std::vector<std::string> texts_of(const std::vector<record_line>& records);
// The type of a record text ("owner IN TYPE rdata..."); "" if there is none.
std::string type_of(const std::string& text);

// What `dig +noall +comments +question +answer +authority +additional` printed. A section dig
// was not asked to print stays empty.
struct dig_reply {
  bool got = false;  // a reply header was printed
  std::string status;
  std::set<std::string> flags;
  std::vector<std::string> question;  // as printed, without the leading ';'
  std::vector<record_line> answer;    // sorted: RRset order is not significant
  std::vector<record_line> authority;
  std::vector<record_line> additional;  // without the OPT pseudo-record
  std::string raw;                      // all of it, for failure messages

  [[nodiscard]] std::vector<std::string> answer_texts() const { return texts_of(answer); }
  [[nodiscard]] std::vector<std::string> authority_texts() const { return texts_of(authority); }
  [[nodiscard]] std::vector<std::string> additional_texts() const { return texts_of(additional); }
};

// Reads dig's output (stdout and stderr together). Comment lines other than the header, the
// flags, the section titles and the question are skipped.
dig_reply parse_dig(const std::string& out);

// The record lines of `kdig +noall +answer` or `dig +noall +answer` (several queries at once),
// each split into words: owner TTL IN TYPE rdata...
std::vector<std::vector<std::string>> answer_lines(const std::string& out);

}  // namespace gate46::testing
