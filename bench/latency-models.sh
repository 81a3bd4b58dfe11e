#!/bin/bash
# Lays out the mid-size model that `moshibin-latency` measures beside models/moshi-tiny, as a
# Kyutai repository (models/README.md), with random weights:
#
#   bench/latency-models.sh [--build build]      -> build/bench-models/moshi-mid
#   build/bench/moshibin-latency --model build/bench-models/moshi-mid --weights int4
#
# - config.json: bench/configs/lm_mid_config.json (the 7B's layout at dim 1024 and 8 layers,
#   with the 7B's depformer) naming the other files, with text_card 96 instead of 32000: the
#   only tokenizer in the tree is moshi-tiny's 96 pieces, and a model must match its tokenizer.
#   That takes the text embedding and text head from 2 x 32.8 M weights to 2 x 0.1 M, of 891 M.
# - model.safetensors: random bfloat16 weights, written by build/bench/lm-load-bench (as Kyutai
#   ships bfloat16; moshibin's `weights` property converts at load).
# - mimi_config.json and mimi.safetensors: the released Mimi configuration
#   (bench/configs/mimi_config.json), random weights from build/tools/random-mimi.
# - tokenizer.model: moshi-tiny's.
# Files already there are kept, so a second run costs nothing. build/ is never committed.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
build=$root/build
while [ $# -gt 0 ]; do
  case $1 in
    --build) build=$(cd "$2" && pwd); shift 2 ;;
    *) echo "usage: bench/latency-models.sh [--build DIR]" >&2; exit 2 ;;
  esac
done
out=$build/bench-models/moshi-mid
mkdir -p "$out"

for tool in "$build/bench/lm-load-bench" "$build/tools/random-mimi"; do
  [ -x "$tool" ] || { echo "latency-models.sh: $tool not built (ninja -C $build)" >&2; exit 1; }
done

if [ ! -f "$out/config.json" ]; then
  python3 - "$root/bench/configs/lm_mid_config.json" "$out/config.json.tmp" <<'EOF'
import json, sys
config = json.load(open(sys.argv[1]))
config["text_card"] = 96  # moshi-tiny's tokenizer
config.update(model_type="moshi", moshi_name="model.safetensors",
              tokenizer_name="tokenizer.model", mimi_name="mimi.safetensors",
              mimi_config_name="mimi_config.json")
json.dump(config, open(sys.argv[2], "w"), indent=2)
EOF
  mv "$out/config.json.tmp" "$out/config.json"
fi
[ -f "$out/model.safetensors" ] ||
  "$build/bench/lm-load-bench" "$out/config.json" "$out/model.safetensors" bfloat16
[ -f "$out/mimi_config.json" ] || cp "$root/bench/configs/mimi_config.json" "$out/mimi_config.json"
[ -f "$out/mimi.safetensors" ] ||
  "$build/tools/random-mimi" "$out/mimi_config.json" 2024 "$out/mimi.safetensors"
[ -f "$out/tokenizer.model" ] || cp "$root/models/moshi-tiny/tokenizer.model" "$out/tokenizer.model"
echo "$out"
