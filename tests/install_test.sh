#!/usr/bin/env bash
# install_test.sh SRC_DIR — builds mmws (no sanitizers), installs it into a
# temporary prefix, then builds the README program against the install the
# three ways a user would: pkg-config (shared and static), CMake
# find_package, and as C++ (the headers must be usable from C++). Also
# checks that the shared library exports only mmws_* symbols.
set -euo pipefail
src=$(cd "$1" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cmake -S "$src" -B "$tmp/build" -DCMAKE_BUILD_TYPE=Release \
  -DMMWS_BUILD_TESTS=OFF -DMMWS_BUILD_BENCH=OFF >/dev/null
cmake --build "$tmp/build" -j "$(nproc)" >/dev/null
cmake --install "$tmp/build" --prefix "$tmp/prefix" >/dev/null
libdir=$(ls -d "$tmp"/prefix/lib*/ | head -1)
export PKG_CONFIG_PATH=$libdir/pkgconfig

echo "exports: symbols the shared library defines"
bad=$(nm -D --defined-only "$libdir/libmmws.so" | awk '{print $3}' |
      grep -v -E '^(mmws_[a-z]|_init$|_fini$|_edata$|_end$|__bss_start$)' || true)
if [ -n "$bad" ]; then echo "FAIL: unexpected exports:"; echo "$bad"; exit 1; fi
n=$(nm -D --defined-only "$libdir/libmmws.so" | grep -c ' mmws_')
echo "  $n mmws_* symbols, nothing else"
[ "$n" -gt 20 ] || { echo "FAIL: too few exports"; exit 1; }

echo "pkg-config, shared"
cc -std=c11 -Wall -Wextra -Werror "$src/examples/codec_demo.c" -o "$tmp/demo_shared" \
  $(pkg-config --cflags --libs mmws)
LD_LIBRARY_PATH=$libdir "$tmp/demo_shared" | tee "$tmp/out"
grep -q '^GET /ws/btcusdt@bookTicker HTTP/1.1' "$tmp/out"
grep -q '^text: Hello$' "$tmp/out"

echo "pkg-config, static"
cc -std=c11 -Wall -Wextra -Werror -DMMWS_STATIC "$src/examples/codec_demo.c" \
  -o "$tmp/demo_static" $(pkg-config --cflags mmws) "$libdir/libmmws.a" \
  $(pkg-config --libs libcrypto)
"$tmp/demo_static" | grep -q '^text: Hello$'

echo "C++"
cat > "$tmp/demo.cpp" <<'CXX'
#include <mmws/mmws.h>
#include <cstdio>
int main() {
    mmws_frame_parser p;
    mmws_frame f;
    static const uint8_t in[] = {0x81, 0x02, 'h', 'i'};
    if (mmws_frame_parser_init(&p, 1024, MMWS_FRAME_VALIDATE_UTF8) != 0) return 1;
    if (mmws_frame_parse(&p, in, sizeof in, &f) != 0) return 1;
    std::printf("text: %.*s via %s\n", (int)f.payload_len,
                (const char *)f.payload, mmws_mask_impl());
    return 0;
}
CXX
c++ -std=c++11 -Wall -Wextra -Wpedantic -Werror "$tmp/demo.cpp" \
  -o "$tmp/demo_cxx" $(pkg-config --cflags --libs mmws)
LD_LIBRARY_PATH=$libdir "$tmp/demo_cxx" | grep -q '^text: hi via '

echo "CMake find_package"
mkdir -p "$tmp/consumer"
cat > "$tmp/consumer/CMakeLists.txt" <<CM
cmake_minimum_required(VERSION 3.18)
project(consumer C)
find_package(mmws REQUIRED)
add_executable(demo "$src/examples/codec_demo.c")
target_link_libraries(demo PRIVATE mmws::mmws_static)
CM
cmake -S "$tmp/consumer" -B "$tmp/consumer/build" -DCMAKE_PREFIX_PATH="$tmp/prefix" >/dev/null
cmake --build "$tmp/consumer/build" >/dev/null
"$tmp/consumer/build/demo" | grep -q '^text: Hello$'
echo "install_test: all consumers built and ran"
