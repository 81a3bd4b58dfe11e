#!/bin/sh
# Builds the safetensors header fuzz target with clang's libFuzzer and runs it briefly.
# usage: run_fuzz.sh SOURCE_ROOT WORK_DIR SECONDS
# Exits 77 (meson's "skipped") when clang++ or libFuzzer is not installed.
set -eu
src=$1
work=$2
seconds=$3
cxx=$(command -v clang++ || command -v clang++-14 || true)
if [ -z "$cxx" ]; then
  echo "clang++ not found: skipping the fuzz run (install clang and libclang-rt-14-dev)"
  exit 77
fi
mkdir -p "$work/corpus"
bin="$work/fuzz_safetensors_header"
if ! "$cxx" -std=c++17 -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
    -I"$src/lib/include" -I"$src/lib" "$src/tests/fuzz/fuzz_safetensors_header.cpp" "$src/lib/kyutai/safetensors.cpp" \
    -o "$bin" 2>"$work/build.log"; then
  if grep -q "libclang_rt.fuzzer" "$work/build.log"; then
    echo "libFuzzer runtime missing: skipping (install libclang-rt-14-dev)"
    exit 77
  fi
  cat "$work/build.log"
  exit 1
fi
# New inputs go to the work corpus; the seeds in the source tree stay untouched.
exec "$bin" -max_total_time="$seconds" -rss_limit_mb=2048 -max_len=4096 -print_final_stats=1 \
  "$work/corpus" "$src/tests/fuzz/corpus"
