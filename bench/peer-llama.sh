#!/bin/bash
# The peer comparison (docs/PERFORMANCE.md, "llama.cpp beside gst-moshi"): llama.cpp's
# single-token decode of a random 7B Llama in Q4_0 and Q8_0, through node-llama-cpp's prebuilt
# binaries (pinned, from the npm registry), and gst-moshi's `lm-bench` step of the Moshi 7B in
# the same layouts (int4, int8), run alternately in rounds, each beside the memory read bandwidth
# measured in the same round. A benchmark, not a test: run it on an otherwise idle machine.
#
#   bench/peer-llama.sh [--rounds 3] [--threads 2] [--tokens 16] [--warmup 2] [--tiny]
#                       [--formats q4_0,q8_0] [--variant NAME] [--dir build/peer] [--build build]
#
# --tiny       a 2-layer Llama (dim 256) against lm-bench's tiny golden configuration: a check
#              of the script in seconds, not a measurement.
# --variant    force a ggml CPU variant of node-llama-cpp (zen4, haswell, sapphirerapids, ...;
#              the files libggml-cpu-NAME.so): the run uses a hard-linked copy of the package
#              with the others removed. By default ggml's loader picks the best for this CPU.
# --dir        node-llama-cpp, the GGUF files (4 + 7 GB for the 7B) and the logs; all are
#              reused by the next run. Never committed (build/ is ignored).
#
# Each timed process is a fresh one (a model loaded, or random weights made, per round); within
# a round the two sides run in turn, and the next round swaps their order. Lines:
#   <side> <format> round <r>: ms <per token or step> GB <read per token or step> GB/s <GB / ms>
#     floor <read bandwidth GB/s> fraction <GB/s / floor>
# then the medians over the rounds of each column. llama.cpp's GB is every weight a token reads
# (all tensors, one row of the token embedding; its float16 KV cache, 0.5 MB a position for the
# 7B, under 0.3 % of it at the default 18 positions, is left out); lm-bench's is its own count
# (weights and KV cache). The floor is bench_util.h's read of a 1 GiB buffer on the same number
# of threads, measured by lm-bench: before its steps for its own line, and by a short lm-bench
# run just before each llama.cpp one.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
peer_version=3.21.1
rounds=3 threads=2 tokens=16 warmup=2 tiny=0 formats=q4_0,q8_0 variant="" dir=build/peer
build=build

die() {
  echo "peer-llama: $*" >&2
  exit 1
}

usage() {
  sed -n '2,/^set /{/^set /d;s/^# \{0,1\}//;p}' "$0" >&2
  exit 2
}

parse_args() {
  while (($#)); do
    [[ $# -ge 2 || $1 == --tiny || $1 == --help ]] || usage
    case $1 in
      --rounds) rounds=$2 ;;
      --threads) threads=$2 ;;
      --tokens) tokens=$2 ;;
      --warmup) warmup=$2 ;;
      --formats) formats=$2 ;;
      --variant) variant=$2 ;;
      --dir) dir=$2 ;;
      --build) build=$2 ;;
      --tiny) tiny=1 && shift && continue ;;
      *) usage ;;
    esac
    shift 2
  done
  [[ $rounds =~ ^[1-9][0-9]*$ && $threads =~ ^[1-9][0-9]*$ && $tokens =~ ^[1-9][0-9]*$ &&
    $warmup =~ ^[0-9]+$ && $formats =~ ^(q4_0|q8_0)(,(q4_0|q8_0))?$ ]] || usage
  cd "$root"
  mkdir -p "$dir/logs"
  dir=$(cd "$dir" && pwd)
}

check_tools() {
  command -v python3 >/dev/null || die "python3 not found (it writes the GGUF files)"
  command -v node >/dev/null || die "node not found: node-llama-cpp $peer_version needs Node.js 20 or later"
  local major
  major=$(node -p 'process.versions.node.split(".")[0]')
  ((major >= 20)) || die "node $(node --version) is too old: node-llama-cpp $peer_version needs 20 or later"
  lm_bench=$root/$build/bench/lm-bench
  [[ -x $lm_bench ]] || die "$lm_bench not found: build it first (meson setup $build && ninja -C $build)"
}

# node-llama-cpp, pinned, in $dir/node; its install script (which may try to build llama.cpp from
# source) is not run: the prebuilt binaries come as its optional dependencies.
install_peer() {
  local node_dir=$dir/node pkg=$dir/node/node_modules/node-llama-cpp/package.json
  if [[ ! -f $pkg ]] || [[ $(node -p "require('$pkg').version") != "$peer_version" ]]; then
    command -v npm >/dev/null || die "npm not found: install npm (Debian: apt-get install npm) to fetch node-llama-cpp $peer_version"
    mkdir -p "$node_dir"
    [[ -f $node_dir/package.json ]] || echo '{"name": "peer-llama", "private": true}' >"$node_dir/package.json"
    echo "installing node-llama-cpp@$peer_version from $(npm config get registry) into $node_dir"
    (cd "$node_dir" && npm install --no-audit --no-fund --ignore-scripts --save-exact \
      "node-llama-cpp@$peer_version") >"$dir/logs/npm.log" 2>&1 ||
      die "could not install node-llama-cpp@$peer_version from the npm registry (is it reachable? npm's output: $dir/logs/npm.log)"
  fi
  bins=$node_dir/node_modules/@node-llama-cpp/linux-$(node -p process.arch)/bins/linux-$(node -p process.arch)
  [[ -d $bins ]] || die "node-llama-cpp $peer_version has no prebuilt binaries for this machine ($bins missing)"
  cp "$root/bench/peer/time_token.mjs" "$node_dir/"  # Node finds packages from the script's folder
  peer_dir=$node_dir
}

# A hard-linked copy of the package holding only libggml-cpu-$variant.so, so that ggml's loader
# has no other to choose.
force_variant() {
  [[ -z $variant ]] && return
  [[ -f $bins/libggml-cpu-$variant.so ]] ||
    die "no variant '$variant'; this package has: $(find "$bins" -name 'libggml-cpu-*.so' -printf '%f\n' | sed 's/libggml-cpu-\(.*\)\.so/\1/' | sort | tr '\n' ' ')"
  peer_dir=$dir/node-$variant
  if [[ ! -d $peer_dir ]]; then
    cp -al "$dir/node" "$peer_dir.part"
    find "$peer_dir.part/node_modules/@node-llama-cpp" -name 'libggml-cpu-*.so' \
      ! -name "libggml-cpu-$variant.so" -delete
    mv "$peer_dir.part" "$peer_dir"
  fi
  cp "$root/bench/peer/time_token.mjs" "$peer_dir/"
}

shape() { ((tiny)) && echo tiny || echo 7b; }

# The GGUF of format $1, written once; its .json (written last) says it is complete.
gguf() {
  local file size=()
  file=$dir/llama-$(shape)-$1.gguf
  ((tiny)) && size=(--tiny)
  if [[ ! -f $file.json ]]; then
    echo "writing $file" >&2
    python3 "$root/bench/peer/write_gguf.py" --type "$1" "${size[@]}" "$file" >&2 ||
      die "could not write $file"
  fi
  echo "$file"
}

token_bytes() {
  python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["token_bytes"])' "$1.json"
}

lm_config() {
  ((tiny)) && echo "$root/tests/data/golden/lm_tiny/config.json" ||
    echo "$root/bench/configs/moshi_7b_config.json"
}

# Runs a side's command into logs/$1.log; dies with its tail when it fails.
logged() {
  local log=$dir/logs/$1.log
  shift
  "$@" >"$log" 2>&1 || { tail -n 20 "$log" >&2; die "failed: $* (log: $log)"; }
  cat "$log"
}

# The read bandwidth now, in GB/s, as lm-bench measures it (a tiny model, one step).
floor_now() {
  logged floor "$lm_bench" --config "$root/tests/data/golden/lm_tiny/config.json" \
    --threads "$threads" --steps 1 --warmup 0 | sed -n 's/^floor gbps=\([0-9.]*\).*/\1/p'
}

# One result line, also kept for the medians: side format round ms GB floor.
report() {
  [[ $# -eq 6 && $4$5$6 =~ ^[0-9.]+$ ]] || die "could not read the figures of $1 $2 (logs in $dir/logs)"
  echo "$*" >>"$results"
  awk '{ gbps = $5 / $4 * 1000; printf "%-9s %-4s round %s: ms %7.1f  GB %5.2f  GB/s %5.1f  floor %5.1f  fraction %.2f\n",
         $1, $2, $3, $4, $5, gbps, $6, gbps / $6 }' <<<"$*"
}

time_llama() {  # format round
  local file floor out
  file=$(gguf "$1")
  floor=$(floor_now)
  out=$(cd "$peer_dir" && logged "llama-$1" node time_token.mjs --model "$file" \
    --tokens "$tokens" --warmup "$warmup" --threads "$threads" | tail -n 1)
  llama_variant=$(sed -n 's/.*variant=\([^ ]*\).*/\1/p' <<<"$out")
  report llama.cpp "$1" "$2" "$(sed -n 's/.*llama ms=\([0-9.]*\).*/\1/p' <<<"$out")" \
    "$(awk '{ print $1 / 1e9 }' <<<"$(token_bytes "$file")")" "$floor"
}

time_moshi() {  # format round
  local weights=int4 out
  [[ $1 == q8_0 ]] && weights=int8
  out=$(logged "lm-bench-$weights" "$lm_bench" --config "$(lm_config)" --weights "$weights" \
    --threads "$threads" --steps "$tokens" --warmup "$warmup" --rounds 1)
  report gst-moshi "$1" "$2" "$(sed -n 's/^lm step_ms=\([0-9.]*\).*/\1/p' <<<"$out")" \
    "$(sed -n 's/.*floor [0-9.]* ms (\([0-9.]*\) GB at.*/\1/p' <<<"$out")" \
    "$(sed -n 's/^floor gbps=\([0-9.]*\).*/\1/p' <<<"$out")"
}

# The median of each column per side and format.
medians() {
  echo "medians over $rounds round(s), $threads thread(s), $tokens tokens/steps each:"
  sort -k2,2 -k1,1r "$results" | awk '
    function med(col,   n, i, j, t, v) {
      n = split(col, v, " ")
      for (i = 2; i <= n; i++) for (j = i; j > 1 && v[j - 1] + 0 > v[j] + 0; j--) { t = v[j]; v[j] = v[j - 1]; v[j - 1] = t }
      return n % 2 ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
    }
    function flush() {
      if (key == "") return
      printf "%-9s %-4s median: ms %7.1f  GB %5.2f  GB/s %5.1f  floor %5.1f  fraction %.2f\n",
        side, fmt, med(ms), med(gb), med(gbps), med(fl), med(fr)
    }
    $1 " " $2 != key { flush(); key = $1 " " $2; side = $1; fmt = $2; ms = gb = gbps = fl = fr = "" }
    { ms = ms " " $4; gb = gb " " $5; gbps = gbps " " $5 / $4 * 1000; fl = fl " " $6; fr = fr " " $5 / $4 * 1000 / $6 }
    END { flush() }'
}

main() {
  parse_args "$@"
  check_tools
  install_peer
  force_variant
  results=$dir/logs/results.txt
  : >"$results"
  local fmt round
  for fmt in ${formats//,/ }; do gguf "$fmt" >/dev/null; done
  echo "load average: $(cut -d' ' -f1-3 /proc/loadavg) (the figures mean something only on an idle machine)"
  for ((round = 1; round <= rounds; round++)); do
    for fmt in ${formats//,/ }; do
      if ((round % 2)); then
        time_llama "$fmt" "$round"
        time_moshi "$fmt" "$round"
      else
        time_moshi "$fmt" "$round"
        time_llama "$fmt" "$round"
      fi
    done
  done
  echo "llama.cpp: node-llama-cpp $peer_version, ggml CPU variant '$llama_variant'$([[ -n $variant ]] && echo ' (forced)')"
  medians
  echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
}

main "$@"
