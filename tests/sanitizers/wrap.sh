#!/bin/sh
# Test wrapper of scripts/sanitize.sh (meson test --wrapper): runs one test under ASan+UBSan.
# The test programs are instrumented, but the programs they start are not: gst-launch-1.0, the
# shell of system(), GStreamer's plugin scanner. Those load our instrumented plugins, and the
# ASan runtime must then come first, so it is preloaded into every process of the test.
set -eu
libasan=${KYUTAI_LIBASAN:?set by scripts/sanitize.sh}
libstdcxx=${KYUTAI_LIBSTDCXX:?set by scripts/sanitize.sh}
# libstdc++ is preloaded too: ASan looks up the real __cxa_throw once, when it starts, and a C
# program (gst-launch-1.0) only loads libstdc++ later with our plugin; the first exception the
# plugin throws then aborts with "CHECK failed: ... real___cxa_throw != 0".
export LD_PRELOAD="$libasan:$libstdcxx${LD_PRELOAD:+:$LD_PRELOAD}"
# The registry is built by GStreamer's plugin scanner, a child process, as in any GStreamer
# application: it loads every plugin the machine has, third-party ones included, whose leaks are
# not ours to judge (gst-plugin-scanner.options turns leak checking off there). The test process
# itself loads only the plugins its pipelines use, and those, ours above all, stay leak-checked.
exec "$@"
