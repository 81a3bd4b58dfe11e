#!/usr/bin/python3
"""Golden data for Kyutai STT: Kyutai's reference PyTorch code run on models/stt-tiny.

Runs the reference the way delayed-streams-modeling's scripts/stt_from_file_pytorch.py does
(silence prefix, the audio in 80 ms frames, the delay's silence, the Mimi encoder and
LMGen.step_with_extra_heads at temperature 0, the script's own tokens_to_timestamped_text), on
test audio, and LMGen alone on random codes with a batch of streams. Writes
tests/data/golden/stt_tiny/. See tools/reference/README.md for how to run it.

Usage: stt_golden.py MOSHI_REPO DSM_REPO MODEL_DIR OUT_DIR
"""
import hashlib
import json
import math
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
# The reference compiles a few functions with torch.compile (torch >= 2.0) unless told not to;
# on a CPU that changes nothing but speed.
os.environ["NO_TORCH_COMPILE"] = "1"
moshi_repo, dsm_repo, model_dir, out_dir = sys.argv[1:5]
sys.path[:0] = [os.path.join(HERE, "shims"), os.path.join(moshi_repo, "moshi"),
                os.path.join(dsm_repo, "scripts")]

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

if not hasattr(F, "scaled_dot_product_attention"):
    # torch 1.13 (Debian 12) predates it; this is its definition for a boolean mask without
    # dropout: the softmax of the scaled scores over the allowed keys, times the values.
    def scaled_dot_product_attention(q, k, v, attn_mask=None, dropout_p=0.0):
        assert dropout_p == 0.0
        scores = (q @ k.transpose(-2, -1)) / math.sqrt(q.shape[-1])
        if attn_mask is not None:
            if attn_mask.dtype == torch.bool:
                scores = scores.masked_fill(~attn_mask, float("-inf"))
            else:
                scores = scores + attn_mask
        return torch.softmax(scores, dim=-1) @ v
    F.scaled_dot_product_attention = scaled_dot_product_attention

import sentencepiece  # noqa: E402
from moshi.models import loaders  # noqa: E402
from moshi.models.lm import LMGen  # noqa: E402
from safetensors.torch import load_file, save_file  # noqa: E402
import stt_from_file_pytorch as script  # noqa: E402

torch.set_num_threads(1)
torch.manual_seed(2026)


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


config = json.load(open(os.path.join(model_dir, "config.json")))
lm_config = dict(config)
for key in ("moshi_name", "mimi_name", "mimi_config_name", "tokenizer_name", "lora_name",
            "model_type", "lm_gen_config", "tts_config", "stt_config", "model_id"):
    lm_config.pop(key, None)
stt_config = config["stt_config"]
mimi_config = json.load(open(os.path.join(model_dir, "mimi_config.json")))
mimi_path = os.path.join(model_dir, "mimi.safetensors")
lm_path = os.path.join(model_dir, "model.safetensors")
tokenizer_path = os.path.join(model_dir, "tokenizer.model")

num_codebooks = max(lm_config["dep_q"], lm_config["n_q"] - lm_config["dep_q"])
mimi = loaders.get_mimi(mimi_path, mimi_config, device="cpu", num_codebooks=num_codebooks)
# get_moshi_lm builds on the meta device and assigns the checkpoint (torch >= 2.1); with
# torch 1.13 the model is built on the CPU and the same checkpoint is loaded strictly.
lm = loaders.get_moshi_lm(None, lm_kwargs=lm_config, device="cpu", dtype=torch.float32)
lm.load_state_dict(load_file(lm_path), strict=True)
lm.eval()
tokenizer = sentencepiece.SentencePieceProcessor(model_file=tokenizer_path)

os.makedirs(out_dir, exist_ok=True)
padding_token_id = config.get("text_padding_token_id", 3)
n_prefix = math.ceil(stt_config["audio_silence_prefix_seconds"] * mimi.frame_rate)
n_suffix = math.ceil(stt_config["audio_delay_seconds"] * mimi.frame_rate)
offset_seconds = int(n_prefix / mimi.frame_rate) + stt_config["audio_delay_seconds"]
files = {"config.json": sha256(os.path.join(model_dir, "config.json")),
         "mimi.safetensors": sha256(mimi_path), "model.safetensors": sha256(lm_path),
         "tokenizer.model": sha256(tokenizer_path)}


def test_audio(seconds, rate=24000):
    """Tone bursts of changing pitch, 0.6 s on and 0.4 s off (tests/gst/test_stt.cpp's)."""
    t = torch.arange(int(seconds * rate), dtype=torch.float64) / rate
    f = 180 + 120 * torch.sin(2 * math.pi * 0.7 * t)
    on = torch.remainder(t, 1.0) < 0.6
    return torch.where(on, 0.3 * torch.sin(2 * math.pi * f * t), torch.zeros_like(t)).float()


def words_of(tokens):
    """The script's words for a stream of these text tokens, or None where the script fails:
    with no end token after the last boundary and more than a second of tokens after it, its
    bound is fractional and slicing with it raises (docs/STT.md)."""
    try:
        timed = script.tokens_to_timestamped_text(
            tokens.view(1, 1, -1), tokenizer, mimi.frame_rate, end_of_padding_id=0,
            padding_token_id=padding_token_id, offset_seconds=offset_seconds)
    except TypeError:
        return None
    return [[w.text, float(w.timestamp[0]), float(w.timestamp[1])] for w in timed]


def prefix_words(tokens):
    """The script's words for every stream that ends after n tokens, n = 1..len(tokens)."""
    return [words_of(tokens[:n]) for n in range(1, len(tokens) + 1)]


def transcribe(audio):
    """The script's path: Mimi codes, text tokens and voice-activity heads of every step."""
    frame = mimi.frame_size
    padded = torch.nn.functional.pad(audio, (0, -audio.shape[-1] % frame))
    silence = torch.zeros(1, 1, frame)
    chunks = [silence] * n_prefix + list(torch.split(padded.view(1, 1, -1), frame, dim=-1)) + \
        [silence] * n_suffix
    lm_gen = LMGen(lm, temp=0, temp_text=0.0)
    codes, tokens, vad = [], [], []
    with torch.no_grad(), mimi.streaming(1), lm_gen.streaming(1):
        for chunk in chunks:
            c = mimi.encode(chunk)
            text, heads = lm_gen.step_with_extra_heads(c)
            codes.append(c)
            tokens.append(text[0, 0, 0])
            vad.append(torch.stack([h[0, 0, 0] for h in heads]))
    return torch.cat(codes, dim=-1), torch.stack(tokens), torch.stack(vad)


# 1. The script's path on audio. The longest test audio of at most 4.3 s, in steps of 0.1 s,
# whose whole stream the script can cut into words (see words_of).
for tenths in range(43, 0, -1):
    audio = test_audio(tenths / 10)
    codes, tokens, vad = transcribe(audio)
    words = words_of(tokens)
    if words is not None:
        break
else:
    sys.exit("the script cuts none of the test audios into words: no golden audio set")
save_file({"audio": audio.view(1, 1, -1), "codes": codes, "text_tokens": tokens.view(1, -1),
           "extra_heads": vad.unsqueeze(0)},
          os.path.join(out_dir, "audio.safetensors"),
          {"producer": "tools/reference/stt_golden.py", "set": "audio",
           "seconds": str(tenths / 10), "silence_prefix_frames": str(n_prefix),
           "delay_frames": str(n_suffix), "offset_seconds": repr(offset_seconds)})

# 2. LMGen alone on random codes, three streams in one batch.
B, T = 3, 40
rand_codes = torch.randint(0, lm_config["card"], (B, num_codebooks, T))
lm_gen = LMGen(lm, temp=0, temp_text=0.0)
btokens, bvad = [], []
with torch.no_grad(), lm_gen.streaming(B):
    for t in range(T):
        text, heads = lm_gen.step_with_extra_heads(rand_codes[:, :, t:t + 1])
        btokens.append(text[:, 0, 0])
        bvad.append(torch.stack([h[:, 0, 0] for h in heads], dim=1))
btokens = torch.stack(btokens, dim=1)
bvad = torch.stack(bvad, dim=1)
save_file({"codes": rand_codes, "text_tokens": btokens, "extra_heads": bvad},
          os.path.join(out_dir, "codes.safetensors"),
          {"producer": "tools/reference/stt_golden.py", "set": "codes"})

with open(os.path.join(out_dir, "words.json"), "w") as f:
    json.dump({"audio": words, "audio_prefixes": prefix_words(tokens),
               "codes_prefixes": [prefix_words(btokens[b]) for b in range(B)],
               "model_files_sha256": files,
               "model_files_bytes": {k: os.path.getsize(os.path.join(model_dir, k)) for k in files},
               "torch": torch.__version__}, f,
              separators=(",", ":"))
    f.write("\n")
print("audio set:", tenths / 10, "s,", codes.shape[-1], "steps,", len(words), "words:",
      " ".join(w[0] for w in words))
print("tokens:", tokens.tolist())
for b in range(B):
    print("codes set, stream", b, btokens[b].tolist())
