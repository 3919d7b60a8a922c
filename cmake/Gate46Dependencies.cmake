# Every outside library comes from Debian 12 (deploy/install-deps.sh installs them).
find_package(Threads REQUIRED)
find_package(Boost 1.81 REQUIRED CONFIG COMPONENTS headers)
find_package(PkgConfig REQUIRED)
find_package(spdlog REQUIRED)
find_package(fmt REQUIRED)
find_package(nlohmann_json REQUIRED)

pkg_check_modules(LDNS REQUIRED IMPORTED_TARGET ldns)
pkg_check_modules(LMDB REQUIRED IMPORTED_TARGET lmdb)
pkg_check_modules(SODIUM REQUIRED IMPORTED_TARGET libsodium)
pkg_check_modules(NFTABLES REQUIRED IMPORTED_TARGET libnftables)
pkg_check_modules(SYSTEMD REQUIRED IMPORTED_TARGET libsystemd)
pkg_check_modules(LIBCAP REQUIRED IMPORTED_TARGET libcap)
# toml++ is used header-only (one translation unit includes it), so no library is linked and
# its exception setting follows ours.
pkg_check_modules(TOMLPP REQUIRED tomlplusplus)

if(NOT GATE46_FUZZ)
  find_package(CLI11 REQUIRED)
  find_package(GTest REQUIRED)
  if(GATE46_BENCHMARKS)
    find_package(benchmark REQUIRED)
  endif()
endif()
