#!/usr/bin/env python3
"""Writes a Llama GGUF (version 3) of random weights, for timing llama.cpp against gst-moshi.

  bench/peer/write_gguf.py --type q4_0|q8_0 [--tiny] OUT.gguf
  bench/peer/write_gguf.py --type q4_0 [--tiny] --sizes     # the sizes only, nothing written

Standard library only (no numpy, no `gguf` package): the layout follows the published GGUF
description (ggml's docs/gguf.md). Speed does not depend on weight values, so each tensor repeats
one block pattern of random bytes (with small, finite scales), which writes 4-7 GB at disk speed.

Formats, as llama.cpp's quantizer gives its Q4_0 and Q8_0 file types: every 2-D weight in the
file type, except output.weight, which llama-quantize raises to Q6_K for Q4_0 (and leaves in Q8_0
for Q8_0); the norms stay float32. The file is written to OUT.part and renamed, and then
OUT.json records its sizes: `token_bytes` is what one token reads (every tensor once, but only one
row of token_embd.weight); a caller may reuse the file when the .json is there.
"""
import argparse
import json
import os
import random
import struct
import sys
from dataclasses import asdict, dataclass

GGUF_MAGIC = b"GGUF"
GGUF_VERSION = 3
ALIGNMENT = 32  # general.alignment's default
PATTERN_BYTES = 1 << 20

# GGUF metadata value types.
T_UINT32, T_INT32, T_FLOAT32, T_BOOL, T_STRING, T_ARRAY = 4, 5, 6, 7, 8, 9


@dataclass(frozen=True)
class Shape:
    dim: int
    layers: int
    heads: int
    kv_heads: int
    ffn: int
    vocab: int
    context: int
    rms_eps: float = 1e-5
    rope_base: float = 10000.0

    @property
    def rope_dim(self):
        return self.dim // self.heads


LLAMA_7B = Shape(dim=4096, layers=32, heads=32, kv_heads=32, ffn=11008, vocab=32000, context=4096)
# Quick checks: every dimension still a multiple of Q6_K's 256-weight blocks where one must be.
TINY = Shape(dim=256, layers=2, heads=4, kv_heads=4, ffn=768, vocab=512, context=256)


@dataclass(frozen=True)
class TensorType:
    """A ggml type: its id in ggml.h's enum, weights and bytes per block, one random block."""

    ggml_id: int
    block_weights: int
    block_bytes: int
    make_block: object  # (random.Random) -> bytes


def f16(x):
    return struct.pack("<e", x)


# Scales keep a product's output about the size of its input (no overflow over 32 layers).
TYPES = {
    "f32": TensorType(0, 1, 4, lambda r: struct.pack("<f", 1.0)),
    "q4_0": TensorType(2, 32, 18, lambda r: f16(r.uniform(0.002, 0.004)) + r.randbytes(16)),
    "q8_0": TensorType(8, 32, 34, lambda r: f16(r.uniform(1e-4, 3e-4)) + r.randbytes(32)),
    # ql[128], qh[64], 16 int8 scales, then d.
    "q6_k": TensorType(14, 256, 210,
                       lambda r: r.randbytes(192) + bytes(r.randrange(1, 16) for _ in range(16))
                       + f16(r.uniform(1e-5, 3e-5))),
}
FILE_TYPES = {"q4_0": 2, "q8_0": 7}  # llama_ftype: LLAMA_FTYPE_MOSTLY_Q4_0, _Q8_0


def tensors(shape, kind):
    """[(name, [ne0, ne1...], type)] in llama.cpp's names; ne0 is a row's length."""
    d, f = shape.dim, shape.ffn
    kv = shape.kv_heads * shape.rope_dim
    out = [("token_embd.weight", [d, shape.vocab], kind)]
    for i in range(shape.layers):
        b = f"blk.{i}."
        out += [(b + "attn_norm.weight", [d], "f32"), (b + "attn_q.weight", [d, d], kind),
                (b + "attn_k.weight", [d, kv], kind), (b + "attn_v.weight", [d, kv], kind),
                (b + "attn_output.weight", [d, d], kind), (b + "ffn_norm.weight", [d], "f32"),
                (b + "ffn_gate.weight", [d, f], kind), (b + "ffn_up.weight", [d, f], kind),
                (b + "ffn_down.weight", [f, d], kind)]
    out += [("output_norm.weight", [d], "f32"),
            ("output.weight", [d, shape.vocab], "q6_k" if kind == "q4_0" else kind)]
    return out


def nbytes(dims, type_name):
    t = TYPES[type_name]
    count = 1
    for n in dims:
        count *= n
    assert dims[0] % t.block_weights == 0, (dims, type_name)
    return count // t.block_weights * t.block_bytes


def padded(n):
    return (n + ALIGNMENT - 1) // ALIGNMENT * ALIGNMENT


def sizes(shape, kind):
    """Bytes of the weights, and of what one token reads: one row of the token embedding."""
    specs = tensors(shape, kind)
    total = sum(nbytes(dims, t) for _, dims, t in specs)
    embd = nbytes(specs[0][1], specs[0][2])
    return total, total - embd + embd // shape.vocab


# ---- GGUF encoding -----------------------------------------------------------------------------

def gguf_string(s):
    data = s.encode("utf-8")
    return struct.pack("<Q", len(data)) + data


def gguf_value(vtype, value):
    if vtype == T_STRING:
        return gguf_string(value)
    return struct.pack({T_UINT32: "<I", T_INT32: "<i", T_FLOAT32: "<f", T_BOOL: "<?"}[vtype], value)


def gguf_kv(key, vtype, value):
    return gguf_string(key) + struct.pack("<I", vtype) + gguf_value(vtype, value)


def gguf_array(key, vtype, values):
    head = gguf_string(key) + struct.pack("<IIQ", T_ARRAY, vtype, len(values))
    return head + b"".join(gguf_value(vtype, v) for v in values)


def vocabulary(vocab):
    """SentencePiece-like tokens: <unk>, <s>, </s>, the 256 byte tokens llama.cpp falls back on
    (it looks up '<0x0A>' at load), then plain pieces. Types: 1 normal, 2 unknown, 3 control,
    6 byte."""
    tokens = ["<unk>", "<s>", "</s>"] + [f"<0x{b:02X}>" for b in range(256)]
    types = [2, 3, 3] + [6] * 256
    assert vocab > len(tokens), "the vocabulary needs room for the byte tokens"
    for i in range(vocab - len(tokens)):
        tokens.append(f"\u2581t{i}")
        types.append(1)
    scores = [0.0] * 259 + [-float(i) for i in range(vocab - 259)]
    return tokens, scores, types


def metadata(shape, kind):
    u32 = lambda k, v: gguf_kv(k, T_UINT32, v)
    tokens, scores, types = vocabulary(shape.vocab)
    return [
        gguf_kv("general.architecture", T_STRING, "llama"),
        gguf_kv("general.name", T_STRING, f"random llama {kind}"),
        u32("general.file_type", FILE_TYPES[kind]),
        u32("general.quantization_version", 2),
        u32("llama.context_length", shape.context), u32("llama.embedding_length", shape.dim),
        u32("llama.block_count", shape.layers), u32("llama.feed_forward_length", shape.ffn),
        u32("llama.rope.dimension_count", shape.rope_dim),
        u32("llama.attention.head_count", shape.heads),
        u32("llama.attention.head_count_kv", shape.kv_heads),
        gguf_kv("llama.attention.layer_norm_rms_epsilon", T_FLOAT32, shape.rms_eps),
        gguf_kv("llama.rope.freq_base", T_FLOAT32, shape.rope_base),
        u32("llama.vocab_size", shape.vocab),
        gguf_kv("tokenizer.ggml.model", T_STRING, "llama"),
        gguf_array("tokenizer.ggml.tokens", T_STRING, tokens),
        gguf_array("tokenizer.ggml.scores", T_FLOAT32, scores),
        gguf_array("tokenizer.ggml.token_type", T_INT32, types),
        u32("tokenizer.ggml.bos_token_id", 1), u32("tokenizer.ggml.eos_token_id", 2),
        u32("tokenizer.ggml.unknown_token_id", 0),
        gguf_kv("tokenizer.ggml.add_bos_token", T_BOOL, True),
    ]


def header(shape, kind):
    """Everything before the tensor data: magic, counts, metadata, tensor infos, padding."""
    specs = tensors(shape, kind)
    kvs = metadata(shape, kind)
    out = [GGUF_MAGIC, struct.pack("<IQQ", GGUF_VERSION, len(specs), len(kvs))] + kvs
    offset = 0
    for name, dims, t in specs:
        out.append(gguf_string(name) + struct.pack("<I", len(dims)))
        out.append(struct.pack(f"<{len(dims)}Q", *dims))
        out.append(struct.pack("<IQ", TYPES[t].ggml_id, offset))
        offset = padded(offset + nbytes(dims, t))
    head = b"".join(out)
    return head + bytes(padded(len(head)) - len(head))


def pattern(type_name, rng):
    t = TYPES[type_name]
    blocks = max(1, PATTERN_BYTES // t.block_bytes)
    return b"".join(t.make_block(rng) for _ in range(blocks))


def write_tensor(f, size, chunk):
    # The chunk is whole blocks, so each prefix written is too.
    while size > 0:
        n = min(size, len(chunk))
        f.write(chunk[:n] if n < len(chunk) else chunk)
        size -= n
    f.write(bytes(padded(f.tell()) - f.tell()))


def write(path, shape, kind):
    rng = random.Random(1234)
    patterns = {}
    part = path + ".part"
    with open(part, "wb") as f:
        f.write(header(shape, kind))
        data_start = f.tell()
        for _, dims, t in tensors(shape, kind):
            if t not in patterns:
                patterns[t] = pattern(t, rng)
            write_tensor(f, nbytes(dims, t), patterns[t])
        file_bytes = f.tell()
    os.replace(part, path)
    weights, token = sizes(shape, kind)
    info = {"type": kind, "shape": asdict(shape), "file_bytes": file_bytes,
            "data_offset": data_start, "weight_bytes": weights, "token_bytes": token}
    with open(path + ".json", "w") as f:
        json.dump(info, f, indent=1)
    return info


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--type", choices=sorted(FILE_TYPES), required=True)
    p.add_argument("--tiny", action="store_true", help="dim 256, 2 layers: quick checks")
    p.add_argument("--sizes", action="store_true", help="print the sizes, write nothing")
    p.add_argument("out", nargs="?")
    a = p.parse_args()
    shape = TINY if a.tiny else LLAMA_7B
    if a.sizes:
        weights, token = sizes(shape, a.type)
        print(json.dumps({"type": a.type, "weight_bytes": weights, "token_bytes": token}))
        return 0
    if not a.out:
        p.error("OUT.gguf is required unless --sizes")
    info = write(a.out, shape, a.type)
    print(f"gguf file={a.out} type={a.type} file_bytes={info['file_bytes']} "
          f"token_bytes={info['token_bytes']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
