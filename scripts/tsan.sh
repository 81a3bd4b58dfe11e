#!/bin/sh
# Runs the concurrency tests (the batch scheduler in the library, four batched moshilm in four
# threads) under ThreadSanitizer, in a build directory of its own (build-tsan). Usage:
#   scripts/tsan.sh            # build what the tests need, then run them
# libtorch, OpenMP, OpenBLAS and GLib are not instrumented: scripts/tsan.supp says what is
# suppressed and why. A report names a file of this project in its stack to be worth reading.
set -eu
cd "$(dirname "$0")/.."
. ./scripts/lib.sh
dir=build-tsan
# Sanitized shared modules take the runtime from the program: no --no-undefined.
setup_build "$dir" -Db_sanitize=thread -Db_lundef=false -Dbuildtype=debugoptimized
ninja -C "$dir" tests/lib/kyutai-lib-tests tests/gst/gst-batching gst/moshi/libgstmoshi.so \
  lib/libkyutai-sentencepiece.so
export TSAN_OPTIONS="suppressions=$PWD/scripts/tsan.supp halt_on_error=0 second_deadlock_stack=1 ${TSAN_OPTIONS:-}"
# One OpenMP thread: libtorch's pool is not instrumented.
export OMP_NUM_THREADS=1
# The plugin scanner is not instrumented and cannot load a sanitized plugin: scan in-process.
export GST_REGISTRY_FORK=no
rm -f "$dir"/tests/gst/*-registry.bin  # a registry that once failed to load the plugin keeps failing
status=0
"$dir"/tests/lib/kyutai-lib-tests --gtest_filter='Scheduler.*:Batch.RefusedInputStopsOnlyItsConversation' || status=1
meson test -C "$dir" --no-rebuild --print-errorlogs gst-batching || status=1
exit $status
