# What the build scripts share (build.sh, sanitize.sh, tsan.sh source it from the repository
# root). POSIX sh.

# setup_build DIR [MESON-OPTION...]: configures the build directory DIR with
# `meson setup DIR MESON-OPTION...` the first time; a directory already configured keeps its
# options (`meson configure DIR` changes them).
setup_build() {
  [ -f "$1/build.ninja" ] || meson setup "$@"
}
