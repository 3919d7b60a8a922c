// What a privileged test needs from the host: root (for namespaces, nftables, binding port 53)
// and the gate46 user and group that gate46d drops to.
#pragma once

#include <unistd.h>

#include <gtest/gtest.h>

// Skips the current test, saying why, unless it runs as root. Use it first in SetUp() or in the
// test body (it returns from the enclosing function). CI runs as root, so there the tests run.
#define GATE46_SKIP_UNLESS_ROOT()                                                                     \
  do {                                                                                                \
    if (::geteuid() != 0) {                                                                           \
      GTEST_SKIP() << "needs root (network namespaces, nftables); run the integration tests as root"; \
    }                                                                                                 \
  } while (false)

namespace gate46::testing {

// Creates the gate46 system user and group exactly as a package would: by running
// `systemd-sysusers deploy/sysusers.d/gate46.conf` from the source tree. Idempotent (does
// nothing when both exist). Needs root. Throws std::runtime_error if they still do not exist.
void ensure_gate46_group();

}  // namespace gate46::testing
