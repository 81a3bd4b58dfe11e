# Sourced by the sample pipelines: finds the repository and the plugins in the build tree.
#   BUILD_DIR    meson build directory holding gst/mimi, gst/moshi and gst/stt (default: build)
#   MODEL        Mimi model for mimienc and mimidec (default: the small untrained test model)
#   MOSHI_MODEL  Moshi repository for the conversation pipelines (default: models/moshi-tiny,
#                tiny and untrained)
#   STT_MODEL    Kyutai STT repository for the subtitle pipeline (default: models/stt-tiny,
#                tiny and untrained)
#   WEIGHTS      weight format of Moshi's language model: auto (default: int8 on a CPU,
#                bfloat16 on a GPU), float32, bfloat16, int8 or int4 (DTYPE, its old name,
#                is still read)
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD_DIR=${BUILD_DIR:-$ROOT/build}
MODEL=${MODEL:-$ROOT/tests/data/golden/mimi_tiny}
NUM_CODEBOOKS=${NUM_CODEBOOKS:-8}
MOSHI_MODEL=${MOSHI_MODEL:-$ROOT/models/moshi-tiny}
STT_MODEL=${STT_MODEL:-$ROOT/models/stt-tiny}
WEIGHTS=${WEIGHTS:-${DTYPE:-auto}}
if [ ! -f "$BUILD_DIR/gst/mimi/libgstmimi.so" ]; then
  echo "$(basename "$0"): no mimi plugin in $BUILD_DIR/gst/mimi; build first (scripts/build.sh)" >&2
  exit 1
fi
# The plugins from the build tree come first.
GST_PLUGIN_PATH="$BUILD_DIR/gst/mimi:$BUILD_DIR/gst/moshi:$BUILD_DIR/gst/stt${GST_PLUGIN_PATH:+:$GST_PLUGIN_PATH}"
export GST_PLUGIN_PATH

# Where a Matroska stream goes (broadcast-bot.sh, live-subtitles.sh): OUT ending in .mkv writes a
# file, OUT=tcp:PORT serves it live over TCP. matroska_sink prints the sink (a pipeline
# fragment), matroska_live matroskamux's setting for it (streamable=true for TCP).
matroska_sink() {
  case "$1" in
    tcp:*) echo "tcpserversink host=0.0.0.0 port=${1#tcp:}" ;;
    *) echo "filesink location=$1" ;;
  esac
}
matroska_live() {
  case "$1" in tcp:*) echo "streamable=true" ;; esac
}
