#!/bin/sh
# Builds gst-moshi with AddressSanitizer and UndefinedBehaviorSanitizer in ./build-asan and runs
# the whole test suite under them (the fuzz targets, sanitized already, are left out). Any report
# fails the test that caused it. Extra arguments go to `meson test` (for example a test name:
# scripts/sanitize.sh lib). tests/sanitizers/ has the wrapper and the leak suppressions.
set -eu
cd "$(dirname "$0")/.."
. ./scripts/lib.sh
root=$PWD
setup_build build-asan -Db_sanitize=address,undefined -Dbuildtype=debugoptimized
ninja -C build-asan ${NINJA_JOBS:+-j$NINJA_JOBS}
KYUTAI_LIBASAN=$(c++ -print-file-name=libasan.so)
KYUTAI_LIBSTDCXX=$(c++ -print-file-name=libstdc++.so.6)
export KYUTAI_LIBASAN KYUTAI_LIBSTDCXX
# Leak checking is on in every test program; tests/sanitizers/lsan.supp says what may be suppressed.
# Allocations unwind slowly: Debian's GLib has no frame pointers, so the fast unwinder stops at
# g_malloc and no suppression could name the GLib function that made a by-design allocation.
# A program named in tests/sanitizers/<name>.options (%b: its basename) gets those options last
# (flags only, no comments: lsan.supp says why each file exists).
export ASAN_OPTIONS="detect_leaks=1:fast_unwind_on_malloc=0:malloc_context_size=10:abort_on_error=1:halt_on_error=1:detect_odr_violation=0:include_if_exists=$root/tests/sanitizers/%b.options"
export LSAN_OPTIONS="suppressions=$root/tests/sanitizers/lsan.supp:print_suppressions=0"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1"
exec meson test -C build-asan --print-errorlogs --no-suite fuzz --timeout-multiplier 4 \
  --wrapper "$root/tests/sanitizers/wrap.sh" "$@"
