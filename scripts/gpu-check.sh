#!/bin/bash
# The whole GPU check in one device `run` (docs/PERFORMANCE.md, "GPU"): builds the library, its
# tests and the benchmarks against the machine's pip torch, runs the library tests on cuda and on
# the CPU, then mimi-bench and lm-bench (7B, bfloat16) on the GPU. Everything goes to $OUT:
#   gpu-check.log  the whole output;       summary.txt  the table printed last;
#   measured.tsv   every error the tests measured (device, test, what, value, tolerance);
#   smi.csv        GPU memory and load every half second;  meson-log.txt  only if setup failed.
# Before: scripts/gpu-carry.sh here (the .deb files in .carry/). On the GPU machine:
#   scripts/gpu-check.sh                 (run's carry: [".carry"], timeout_s 600)
# Here, to try everything but the GPU against Debian's libtorch, with short benchmarks:
#   scripts/gpu-check.sh --cpu-dry-run   (writes to build-gpu-check/out unless OUT is set)
set -uo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
mode=gpu
[[ ${1:-} == --cpu-dry-run ]] && mode=cpu
out=${OUT:-$root/build-gpu-check/out}
work=${GPU_CHECK_WORK:-/tmp/gpu-check-$mode}
prefix=$work/prefix
build=$work/build
jobs=$(nproc)
mkdir -p "$out"
rm -rf "$work"
mkdir -p "$prefix"
exec > >(tee "$out/gpu-check.log") 2>&1
summary=$out/summary.txt
: >"$summary"
start=$SECONDS
status=0  # 1 once a test suite failed; the benchmarks still run, and the script exits with it

say() { echo "== [$((SECONDS - start)) s] $*"; }
row() { printf '%-34s %-44s %s\n' "$1" "$2" "${3:-}" >>"$summary"; }
finish() {
  echo
  echo "== gpu-check summary ($mode, $((SECONDS - start)) s) =="
  cat "$summary"
  exit "${1:-0}"
}

# --- The machine -------------------------------------------------------------------------------
say "machine"
if [[ $mode == gpu ]]; then
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm --format=csv
  python=${PYTHON:-python3}
  torch_dir=$("$python" -c 'import torch, os; print(os.path.dirname(torch.__file__))') || finish 1
  "$python" -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda,
"cxx11 abi", torch._C._GLIBCXX_USE_CXX11_ABI, "gpus", torch.cuda.device_count())'
  site=$(dirname "$torch_dir")
  # libtorch_cuda finds the CUDA libraries of the nvidia-* wheels through its own RUNPATH; the
  # linker resolving our programs' indirect needs goes by LD_LIBRARY_PATH.
  nvidia_libs=$(find "$site/nvidia" -maxdepth 3 -type d -name lib 2>/dev/null | paste -sd:)
  device=cuda
else
  # Debian's libtorch laid out as a pip install's torch/ folder, so -Dtorch_dir is exercised.
  torch_dir=$work/torch
  mkdir -p "$torch_dir/include" "$torch_dir/lib" "$torch_dir/share/cmake/Torch"
  for d in ATen c10 caffe2 torch; do ln -s "/usr/include/$d" "$torch_dir/include/$d"; done
  for l in torch torch_cpu c10; do ln -s "/usr/lib/x86_64-linux-gnu/lib$l.so" "$torch_dir/lib/"; done
  ln -s /usr/lib/x86_64-linux-gnu/cmake/Torch/TorchConfig.cmake "$torch_dir/share/cmake/Torch/"
  nvidia_libs=
  device=cpu
fi
c++ --version | head -1 || { row build "no C++ compiler on this machine"; finish 1; }
echo "meson $(meson --version), ninja $(ninja --version), $jobs cores, torch_dir $torch_dir"
grep -o '_GLIBCXX_USE_CXX11_ABI=[01]' "$torch_dir/share/cmake/Torch/TorchConfig.cmake" || true

# --- GoogleTest, nlohmann-json, sentencepiece (and pkgconf) from the carried .deb files ---------
say "unpacking .carry/*.deb into $prefix"
ls "$root"/.carry/*.deb >/dev/null 2>&1 || { row setup "no .carry/*.deb: run scripts/gpu-carry.sh"; finish 1; }
for f in "$root"/.carry/*.deb; do dpkg -x "$f" "$prefix" || finish 1; done
libdir=$prefix/usr/lib/x86_64-linux-gnu
pcdirs=$libdir/pkgconfig:$prefix/usr/share/pkgconfig
sed -i -E "s#(=|-I|-L)/usr#\1$prefix/usr#g" "$libdir"/pkgconfig/*.pc "$prefix"/usr/share/pkgconfig/*.pc
export LD_LIBRARY_PATH=$libdir${nvidia_libs:+:$nvidia_libs}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
# Only the prefix's .pc files are seen, so nothing is found from the machine by accident.
export PKG_CONFIG_LIBDIR=$pcdirs PKG_CONFIG_PATH=
pkg_config=$(command -v pkg-config || echo "$prefix/usr/bin/pkgconf")
printf "[binaries]\npkg-config = '%s'\n" "$pkg_config" >"$work/native.ini"
for p in gtest gtest_main nlohmann_json sentencepiece; do
  echo "$p $("$pkg_config" --modversion "$p") $("$pkg_config" --cflags "$p")"
done

# --- Build -------------------------------------------------------------------------------------
say "meson setup"
if ! meson setup "$build" "$root" --native-file "$work/native.ini" -Dbuildtype=release \
    -Dtorch_dir="$torch_dir" -Dgst=disabled -Dtests=enabled; then
  cp "$build/meson-logs/meson-log.txt" "$out/" 2>/dev/null
  row "meson setup" "FAILED (meson-log.txt)"
  finish 1
fi
say "ninja -j$jobs"
build_start=$SECONDS
if ! ninja -C "$build" -j"$jobs" >"$work/ninja.log" 2>&1; then
  grep -E -B2 -A12 'error|FAILED' "$work/ninja.log" | head -200
  row build "FAILED (gpu-check.log has the first errors)"
  finish 1
fi
tail -1 "$work/ninja.log"
row build "ok in $((SECONDS - build_start)) s" "$(c++ --version | head -1)"
ldd "$build/bench/lm-bench" | grep -E 'torch|c10|cudart|cublas' || true

# --- Library tests -----------------------------------------------------------------------------
echo -e "device\ttest\twhat\tvalue\ttolerance" >"$out/measured.tsv"
lib_tests() {  # device
  say "library tests on $1"
  KYUTAI_TEST_DEVICE=$1 timeout 300 "$build/tests/lib/kyutai-lib-tests" >"$work/tests-$1.log" 2>&1
  local rc=$?
  [[ $rc != 0 ]] && status=1
  grep -v '^\[ measured \]' "$work/tests-$1.log" | grep -E '^\[  (FAILED|SKIPPED) |Failure|error' | head -60
  # "[ measured ] Suite.Test on cuda: relative L2 3.1e-07 (tolerance 1e-05)"
  sed -n -E 's/^\[ measured \] ([^ ]+) on ([^:]+): (.+) ([^ ]+) \(tolerance ([^)]+)\)$/\2\t\1\t\3\t\4\t\5/p' \
    "$work/tests-$1.log" >>"$out/measured.tsv"
  local passed failed skipped worst
  passed=$(grep -c '^\[       OK \]' "$work/tests-$1.log")
  failed=$(grep -c '^\[  FAILED  \] [^0-9]' "$work/tests-$1.log")
  skipped=$(grep -c '^\[  SKIPPED \] [^0-9]' "$work/tests-$1.log")
  # Worst ratio of error to tolerance among the float comparisons.
  worst=$(awk -F'\t' -v d="$1" '$1 == d && $5 > 0 && $4 / $5 > w { w = $4 / $5; t = $2 " " $3 " " $4 }
          END { if (t) printf "%.2f of tolerance (%s)", w, t }' "$out/measured.tsv")
  row "library tests, $1" "$passed passed, $failed failed, $skipped skipped (rc $rc)"
  row "  worst measured error, $1" "${worst:-none measured}"
}
lib_tests "$device"
[[ $device != cpu ]] && lib_tests cpu
say "kernel tests (CPU)"
timeout 120 "$build/tests/lib/kyutai-kernel-tests" >"$work/kernels.log" 2>&1 || status=1
row "kernel tests, cpu" "$(tail -1 "$work/kernels.log")"

# --- Benchmarks ----------------------------------------------------------------------------------
if [[ $mode == gpu ]]; then
  nvidia-smi --query-gpu=timestamp,memory.used,utilization.gpu --format=csv -lms 500 \
    >"$out/smi.csv" 2>/dev/null &
  smi=$!
  lm_config=$root/bench/configs/moshi_7b_config.json lm_label="7B bf16"
  mimi_args=(--frames 100 --warmup 10) lm_args=(--steps 50 --warmup 5) batches=(1 8 32)
else
  lm_config=$root/tests/data/golden/lm_tiny/config.json lm_label="lm_tiny bf16"
  mimi_args=(--frames 3 --warmup 1) lm_args=(--steps 3 --warmup 1) batches=(1 2)
fi
bench_line() {  # label target command...: runs, keeps the machine-readable last line
  local label=$1 target=$2
  shift 2
  say "$label: $*"
  local line
  line=$(timeout 240 "$@" 2>&1 | tee /dev/stderr | tail -1)
  row "$label" "$line" "$target"
}
mimi_target=
[[ $mode == gpu ]] && mimi_target="target: encode + decode <= 5 ms"
bench_line "mimi-bench, $device" "$mimi_target" "$build/bench/mimi-bench" --device "$device" \
  "${mimi_args[@]}"
if [[ $mode == gpu ]]; then
  bench_line "mimi-bench, cpu $jobs threads" "" "$build/bench/mimi-bench" --threads "$jobs" \
    --frames 30 --warmup 5
fi
for b in "${batches[@]}"; do
  batch_args=()
  [[ $b != 1 ]] && batch_args=(--batch "$b")
  target=
  [[ $mode == gpu && $b == 1 ]] && target="target: step <= 20 ms"
  [[ $mode == gpu && $b == 32 ]] && target="target: step <= 80 ms"
  bench_line "lm-bench $lm_label, batch $b" "$target" "$build/bench/lm-bench" --config "$lm_config" \
    --weights bfloat16 --device "$device" --threads "$jobs" "${lm_args[@]}" "${batch_args[@]}"
done
[[ $mode == gpu ]] && { kill "$smi" 2>/dev/null; row "peak GPU memory (smi.csv)" \
  "$(sort -t, -k2 -n "$out/smi.csv" 2>/dev/null | tail -1 | cut -d, -f2)"; }
finish "$status"
