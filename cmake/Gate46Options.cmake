# Compiler flags shared by every gate46 target, through the gate46_options interface target.
add_library(gate46_options INTERFACE)
target_compile_options(gate46_options INTERFACE -Wall -Wextra -Wpedantic -Wshadow
                                                -Wnon-virtual-dtor -Wold-style-cast)
# g++ 12 reports impossible out-of-bounds copies inside std::vector/std::string at -O2
# (GCC bugs 105545, 105651, 106199); the sanitizer build checks real bounds at run time.
if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU" AND CMAKE_CXX_COMPILER_VERSION VERSION_LESS 13)
  target_compile_options(gate46_options INTERFACE -Wno-array-bounds -Wno-stringop-overflow -Wno-stringop-overread)
endif()
target_compile_definitions(gate46_options INTERFACE
  GATE46_VERSION="${PROJECT_VERSION}"
  # Asio: no deprecated interfaces; one io_context per thread needs no extra locking hints.
  BOOST_ASIO_NO_DEPRECATED)

if(GATE46_SANITIZE AND GATE46_FUZZ)
  message(FATAL_ERROR "GATE46_SANITIZE and GATE46_FUZZ are separate builds")
endif()

if(GATE46_SANITIZE)
  set(gate46_sanitizers -fsanitize=address,undefined -fno-sanitize-recover=undefined
                        -fno-omit-frame-pointer)
  target_compile_options(gate46_options INTERFACE ${gate46_sanitizers})
  target_link_options(gate46_options INTERFACE ${gate46_sanitizers})
endif()

if(GATE46_FUZZ)
  if(NOT CMAKE_CXX_COMPILER_ID STREQUAL "Clang")
    message(FATAL_ERROR "GATE46_FUZZ needs clang (CXX=clang++)")
  endif()
  # Every library is instrumented for coverage; only the fuzz targets link the libFuzzer main.
  # clang 14 fails on Asio coroutines under -fsanitize=function, hence its exclusion.
  set(gate46_fuzz_flags -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize=function
                        -fno-omit-frame-pointer)
  target_compile_options(gate46_options INTERFACE ${gate46_fuzz_flags})
  target_link_options(gate46_options INTERFACE -fsanitize=address,undefined
                                               -fno-sanitize=function)
endif()

# Precompiled Asio headers for the translation units that use it; each target compiles the
# header once (see environment notes: one Asio coroutine TU costs ~6 s / 450 MB at -O2).
function(gate46_asio_pch target)
  target_precompile_headers(${target} PRIVATE
    <boost/asio/awaitable.hpp>
    <boost/asio/co_spawn.hpp>
    <boost/asio/detached.hpp>
    <boost/asio/io_context.hpp>
    <boost/asio/ip/tcp.hpp>
    <boost/asio/ip/udp.hpp>
    <boost/asio/signal_set.hpp>
    <boost/asio/steady_timer.hpp>
    <boost/asio/use_awaitable.hpp>
    <boost/asio/as_tuple.hpp>
    <boost/asio/experimental/awaitable_operators.hpp>)
endfunction()
