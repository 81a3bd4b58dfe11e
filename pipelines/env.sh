# Sourced by the sample pipelines: finds the repository and the mimi plugin in the build tree.
#   BUILD_DIR  meson build directory holding gst/mimi/libgstmimi.so (default: build)
#   MODEL      Mimi model for mimienc and mimidec (default: the small untrained test model)
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD_DIR=${BUILD_DIR:-$ROOT/build}
MODEL=${MODEL:-$ROOT/tests/data/golden/mimi_tiny}
NUM_CODEBOOKS=${NUM_CODEBOOKS:-8}
if [ ! -f "$BUILD_DIR/gst/mimi/libgstmimi.so" ]; then
  echo "$(basename "$0"): no mimi plugin in $BUILD_DIR/gst/mimi; build first (scripts/build.sh)" >&2
  exit 1
fi
# The plugin from the build tree comes first.
GST_PLUGIN_PATH="$BUILD_DIR/gst/mimi${GST_PLUGIN_PATH:+:$GST_PLUGIN_PATH}"
export GST_PLUGIN_PATH
