#include "gate46/mapping/store.hpp"

namespace gate46::mapping {
namespace {

class store_error_category final : public std::error_category {
 public:
  [[nodiscard]] const char* name() const noexcept override { return "gate46.store"; }
  [[nodiscard]] std::string message(int value) const override {
    switch (static_cast<store_errc>(value)) {
      case store_errc::pool_exhausted:
        return "the fake pool is full and no mapping is eligible for recycling";
      case store_errc::store_full:
        return "the mapping store is full (store.map_size)";
      case store_errc::no_pool_key:
        return "no pool key (pools.key_file; gate46ctl keygen makes one)";
      case store_errc::not_found:
        return "no such mapping";
      case store_errc::outside_pools:
        return "the address is in neither fake pool";
      case store_errc::address_taken:
        return "the address belongs to another name or is quarantined";
      case store_errc::held:
        return "a flow holds the mapping";
      case store_errc::corrupt:
        return "a record of the mapping store is corrupt";
      case store_errc::store_error:
        return "the mapping store failed (see the log)";
    }
    return "unknown mapping store error";
  }
};

}  // namespace

const std::error_category& store_category() noexcept {
  static const store_error_category category;
  return category;
}

std::error_code make_error_code(store_errc e) noexcept {
  return {static_cast<int>(e), store_category()};
}

}  // namespace gate46::mapping
