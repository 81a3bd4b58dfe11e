#!/bin/sh
# Builds a fuzz target with clang's libFuzzer, ASan and UBSan, and runs it briefly. clang, not
# GCC: GCC's UBSan misses float-to-int overflow, the configuration parser's likeliest bug.
# usage: run_fuzz.sh SOURCE_ROOT WORK_DIR SECONDS TARGET LIBRARY_SOURCE...
#   TARGET names tests/fuzz/fuzz_TARGET.cpp and its seeds, tests/fuzz/TARGET_corpus.
# Exits 77 (meson's "skipped") when clang++ or libFuzzer is not installed.
set -eu
src=$1
work=$2
seconds=$3
target=$4
shift 4
cxx=$(command -v clang++ || command -v clang++-14 || true)
if [ -z "$cxx" ]; then
  echo "clang++ not found: skipping the fuzz run (install clang and libclang-rt-14-dev)"
  exit 77
fi
mkdir -p "$work/corpus"
bin="$work/fuzz_$target"
sources=""
for s in "$@"; do sources="$sources $src/lib/kyutai/$s"; done
# shellcheck disable=SC2086 # one word per library source
if ! "$cxx" -std=c++17 -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
    -I"$src/lib/include" -I"$src/lib" "$src/tests/fuzz/fuzz_$target.cpp" $sources \
    -o "$bin" 2>"$work/build.log"; then
  if grep -q "libclang_rt.fuzzer" "$work/build.log"; then
    echo "libFuzzer runtime missing: skipping (install libclang-rt-14-dev)"
    exit 77
  fi
  cat "$work/build.log"
  exit 1
fi
# A dictionary (tests/fuzz/TARGET.dict), when there is one, steers the mutations.
dict=""
if [ -f "$src/tests/fuzz/$target.dict" ]; then dict="-dict=$src/tests/fuzz/$target.dict"; fi
# New inputs go to the work corpus; the seeds in the source tree stay untouched.
# shellcheck disable=SC2086 # $dict is empty or one word
exec "$bin" -max_total_time="$seconds" -rss_limit_mb=2048 -max_len=4096 -print_final_stats=1 \
  $dict "$work/corpus" "$src/tests/fuzz/${target}_corpus"
