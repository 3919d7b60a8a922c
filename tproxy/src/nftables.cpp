#include "gate46/tproxy/nftables.hpp"

#include <nftables/libnftables.h>

#include <memory>

namespace gate46::tproxy {
namespace {

struct ctx_deleter {
  void operator()(nft_ctx* c) const noexcept { nft_ctx_free(c); }
};
using ctx_ptr = std::unique_ptr<nft_ctx, ctx_deleter>;

struct result {
  int rc = 0;
  std::string output;
  std::string error;
};

result run(const std::string& script) {
  const ctx_ptr ctx{nft_ctx_new(NFT_CTX_DEFAULT)};
  if (!ctx) {
    throw nft_error{"nft: cannot create a libnftables context"};
  }
  nft_ctx_buffer_output(ctx.get());
  nft_ctx_buffer_error(ctx.get());
  result r;
  r.rc = nft_run_cmd_from_buffer(ctx.get(), script.c_str());
  r.output = nft_ctx_get_output_buffer(ctx.get());
  r.error = nft_ctx_get_error_buffer(ctx.get());
  return r;
}

}  // namespace

void run_nft(const std::string& script) {
  const auto r = run(script);
  if (r.rc != 0) {
    auto text = r.error.empty() ? std::string{"nft failed"} : r.error;
    while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) {
      text.pop_back();
    }
    if (text.find("Operation not permitted") != std::string::npos) {
      text += " (CAP_NET_ADMIN is needed)";
    }
    if (text.find("tproxy") != std::string::npos && text.find("No such file or directory") != std::string::npos) {
      text += " (this kernel lacks nft_tproxy: CONFIG_NFT_TPROXY)";
    }
    throw nft_error{text};
  }
}

void apply_table(const ruleset_settings& s) {
  run_nft(make_apply_script(s));
}

void remove_table() {
  run_nft(make_remove_script());
}

std::optional<std::string> live_table() {
  auto r = run(std::string{"list table "} + std::string{table_family} + " " + std::string{table_name});
  if (r.rc != 0) {
    return std::nullopt;
  }
  return std::move(r.output);
}

}  // namespace gate46::tproxy
