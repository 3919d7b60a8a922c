#include "gate46/testing/dig.hpp"

#include <algorithm>
#include <cstddef>
#include <sstream>

namespace gate46::testing {

std::vector<std::string> split_words(const std::string& line) {
  std::istringstream in{line};
  std::vector<std::string> words;
  for (std::string w; in >> w;) {
    words.push_back(w);
  }
  return words;
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in{text};
  for (std::string line; std::getline(in, line);) {
    lines.push_back(line);
  }
  return lines;
}

record_line record_of(const std::string& line) {
  const auto w = split_words(line);
  record_line r;
  if (w.size() < 4) {
    r.text = line;
    return r;
  }
  r.ttl = static_cast<std::uint32_t>(std::stoul(w[1]));
  r.text = w[0];
  for (std::size_t i = 2; i < w.size(); ++i) {
    r.text += " " + w[i];
  }
  return r;
}

std::vector<std::string> texts_of(const std::vector<record_line>& records) {
  std::vector<std::string> out;
  out.reserve(records.size());
  for (const auto& r : records) {
    out.push_back(r.text);
  }
  return out;
}

std::string type_of(const std::string& text) {
  const auto w = split_words(text);
  return w.size() >= 3 ? w[2] : "";
}

dig_reply parse_dig(const std::string& out) {
  dig_reply reply;
  reply.raw = out;
  std::string section;
  for (const auto& line : lines_of(out)) {
    if (line.starts_with(";; ->>HEADER<<-")) {
      reply.got = true;
      const auto at = line.find("status: ");
      if (at != std::string::npos) {
        reply.status = line.substr(at + 8, line.find(',', at) - at - 8);
      }
    } else if (line.starts_with(";; flags:")) {
      const auto words = split_words(line.substr(9, line.find(';', 3) - 9));
      reply.flags.insert(words.begin(), words.end());
    } else if (line.starts_with(";; ") && line.ends_with(" SECTION:")) {
      section = line.substr(3, line.size() - 3 - 9);
    } else if (line.empty() || line.starts_with(";;")) {
      continue;
    } else if (line.starts_with(";")) {
      // dig prints the question as a comment: ";www.gate46.test. IN A".
      if (section == "QUESTION") {
        reply.question.push_back(line.substr(1));
      }
    } else if (section == "ANSWER") {
      reply.answer.push_back(record_of(line));
    } else if (section == "AUTHORITY") {
      reply.authority.push_back(record_of(line));
    } else if (section == "ADDITIONAL") {
      reply.additional.push_back(record_of(line));
    }
  }
  std::sort(reply.answer.begin(), reply.answer.end());
  std::sort(reply.authority.begin(), reply.authority.end());
  std::sort(reply.additional.begin(), reply.additional.end());
  return reply;
}

std::vector<std::vector<std::string>> answer_lines(const std::string& out) {
  std::vector<std::vector<std::string>> records;
  for (const auto& line : lines_of(out)) {
    if (line.empty() || line.starts_with(";")) {
      continue;
    }
    records.push_back(split_words(line));  // owner TTL IN TYPE rdata...
  }
  return records;
}

}  // namespace gate46::testing
