// Every streaming layer: the whole-signal path and the step path agree over several chunk sizes,
// as far as the reference itself agrees (see golden/README.md, "Streaming vs batch").
#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>
#include <gtest/gtest.h>

#include <cmath>
#include <utility>

#include "kyutai/model/conv.h"
#include "kyutai/model/mimi_model.h"
#include "kyutai/model/seanet.h"
#include "kyutai/model/transformer.h"
#include "kyutai/weights/dense_product.h"
#include "test_util.h"

namespace kyutai {
namespace {

using test::close_rel;
using test::data_path;
using test::max_abs;

template <class Layer>
void randomize(Layer& layer, uint64_t seed) {
  std::vector<ParamSpec> specs;
  layer.declare(Params(&specs));
  init_random(specs, seed, test::device());
}

// Runs `step` over x in chunks of `chunk` steps along the last dimension and concatenates.
template <class Step>
at::Tensor chunked(const at::Tensor& x, int64_t chunk, int dim, Step&& step) {
  std::vector<at::Tensor> outs;
  for (int64_t t = 0; t < x.size(dim); t += chunk)
    outs.push_back(step(x.narrow(dim, t, std::min(chunk, x.size(dim) - t))));
  return at::cat(outs, dim);
}

struct ConvCase {
  int kernel, stride, dilation, groups;
  bool replicate;
};

// A layer's declared weight and bias (undefined without one), as loaded.
template <class Layer>
std::pair<at::Tensor, at::Tensor> weight_and_bias(Layer& layer) {
  std::vector<ParamSpec> specs;
  layer.declare(Params(&specs));
  at::Tensor weight, bias;
  for (const ParamSpec& p : specs)
    (p.name.find("weight") != std::string::npos ? weight : bias) = *p.slot;
  return {weight, bias};
}

class ConvStreaming : public ::testing::TestWithParam<ConvCase> {};

TEST_P(ConvStreaming, StepsMatchWholeSignal) {
  c10::InferenceMode guard;
  const ConvCase c = GetParam();
  Conv1dOptions o{6, 12, c.kernel, c.stride, c.dilation, c.groups, true, c.replicate};
  StreamingConv1d conv(o);
  randomize(conv, 7);
  conv.prepare();  // on the CPU, the steps take the float32 kernels
  const at::Tensor x = at::randn({1, 6, 24 * c.stride}).to(test::device());
  const at::Tensor whole = conv.forward(x);
  ASSERT_EQ(whole.size(2), 24);
  for (int64_t frames : {1, 2, 3, 6, 8, 12}) {
    ConvState state;
    state = conv.init_state(1, x.options());
    const at::Tensor streamed = chunked(
        x, frames * c.stride, 2, [&](const at::Tensor& part) { return conv.step(part, state); });
    EXPECT_TRUE(close_rel(streamed, whole, 1e-6)) << "chunk of " << frames << " strides";
  }
}

// A step unfolds the carried context and the new input into columns itself (on every thread):
// bit for bit the product of libtorch's own unfolding of the concatenated signal, plus the bias,
// each column as the kernels give it alone up to 16 columns, and past 16 (600 here) as one fused
// multiply-add chain per element, which the dense kernels give on every instruction set, with
// inputs shorter than the context too; and the carried context is a copy, not a view of the
// input.
TEST_P(ConvStreaming, AStepIsTheProductOfTheUnfoldedSignal) {
  if (test::on_gpu()) GTEST_SKIP() << "the unfolding on the threads is the CPU's";
  c10::InferenceMode guard;
  const ConvCase c = GetParam();
  if (c.groups != 1) GTEST_SKIP() << "groups take libtorch's convolution";
  Conv1dOptions o{6, 12, c.kernel, c.stride, c.dilation, 1, true, c.replicate};
  StreamingConv1d conv(o);
  randomize(conv, 9);
  conv.prepare();
  const auto [weight, bias] = weight_and_bias(conv);
  LinearWeight on_kernels;
  on_kernels.tensor = weight.contiguous().view({12, -1});
  on_kernels.pack(WeightFormat::Float32);
  const int64_t ctx = (c.kernel - 1) * c.dilation + 1 - c.stride;
  ConvState state = conv.init_state(3, at::kFloat);
  // 3 streams of 1 step (3 columns), 4 (12 columns: blocks of 8 rows), 200 (tiles), 1.
  for (int64_t steps : {1, 4, 200, 1}) {
    at::Tensor x = at::randn({3, 6, steps * c.stride});
    at::Tensor full = at::cat({state.previous, x}, 2);
    if (c.replicate && state.first) full = at::cat({x.narrow(2, 0, 1).expand({-1, -1, ctx}), x}, 2);
    const at::Tensor y = conv.step(x, state);
    const int64_t len = full.size(2), columns = 3 * steps;
    const at::Tensor cols =
        full.as_strided({3, 6, c.kernel, steps}, {6 * len, len, c.dilation, c.stride})
            .permute({1, 2, 0, 3})
            .reshape({6 * c.kernel, columns});
    // Up to 16 columns, each column as the kernels give it alone; past 16, the dense kernels:
    // per element, one chain of fused multiply-adds in the order of the inputs.
    at::Tensor product;
    if (columns <= LinearWeight::kExactRows) {
      const at::Tensor rows = cols.t().contiguous();
      std::vector<at::Tensor> alone;
      for (int64_t j = 0; j < columns; ++j) alone.push_back(on_kernels(rows.narrow(0, j, 1)));
      product = at::cat(alone, 0).t();
    } else {
      const at::Tensor w = weight.reshape({12, -1}).contiguous(), x = cols.contiguous();
      product = at::empty({12, columns});
      const int64_t k = w.size(1);
      for (int64_t o = 0; o < 12; ++o)
        for (int64_t j = 0; j < columns; ++j) {
          float acc = 0.0f;
          for (int64_t i = 0; i < k; ++i)
            acc =
                std::fma(w.data_ptr<float>()[o * k + i], x.data_ptr<float>()[i * columns + j], acc);
          product.data_ptr<float>()[o * columns + j] = acc;
        }
    }
    const at::Tensor expected =
        (product + bias.unsqueeze(1)).view({12, 3, steps}).permute({1, 0, 2});
    EXPECT_TRUE(at::equal(y, expected)) << steps << " steps";
    const at::Tensor carried = full.narrow(2, len - ctx, ctx).clone();
    EXPECT_TRUE(at::equal(state.previous, carried)) << steps << " steps";
    x.normal_();  // the caller refills its buffer: the carried context stays
    EXPECT_TRUE(at::equal(state.previous, carried)) << steps << " steps";
  }
}

INSTANTIATE_TEST_SUITE_P(Kernels, ConvStreaming,
                         ::testing::Values(ConvCase{1, 1, 1, 1, false}, ConvCase{3, 1, 1, 1, false},
                                           ConvCase{3, 1, 2, 1, false}, ConvCase{7, 1, 1, 1, false},
                                           ConvCase{4, 2, 1, 1, true}, ConvCase{8, 4, 1, 1, false},
                                           ConvCase{10, 5, 1, 1, false},
                                           ConvCase{4, 2, 1, 6, true}));

class ConvTrStreaming : public ::testing::TestWithParam<ConvCase> {};

TEST_P(ConvTrStreaming, StepsMatchWholeSignal) {
  c10::InferenceMode guard;
  const ConvCase c = GetParam();
  Conv1dOptions o{12, 12, c.kernel, c.stride, 1, c.groups, c.groups == 1, false};
  StreamingConvTranspose1d convtr(o);
  randomize(convtr, 11);
  convtr.prepare();
  const at::Tensor x = at::randn({1, 12, 24}).to(test::device());
  const at::Tensor whole = convtr.forward(x);
  ASSERT_EQ(whole.size(2), 24 * c.stride);
  for (int64_t frames : {1, 2, 3, 8}) {
    ConvTrState state = convtr.init_state(1, x.options());
    const at::Tensor streamed =
        chunked(x, frames, 2, [&](const at::Tensor& part) { return convtr.step(part, state); });
    EXPECT_TRUE(close_rel(streamed, whole, 1e-6)) << "chunk of " << frames << " steps";
  }
}

// The whole signal against libtorch's own transposed convolution, with a bias: the product on
// the kernels (24 columns: the dense kernels), and the channel-wise loop (groups 12, Mimi's
// upsampler, and a kernel that is not a multiple of the stride).
TEST_P(ConvTrStreaming, WholeSignalIsLibtorchs) {
  c10::InferenceMode guard;
  const ConvCase c = GetParam();
  Conv1dOptions o{12, 12, c.kernel, c.stride, 1, c.groups, true, false};
  StreamingConvTranspose1d convtr(o);
  randomize(convtr, 12);
  convtr.prepare();
  const auto [weight, bias] = weight_and_bias(convtr);
  const at::Tensor x = at::randn({2, 12, 24}).to(test::device());
  const at::Tensor reference =
      at::conv_transpose1d(x, weight.contiguous(), bias, at::IntArrayRef{c.stride},
                           at::IntArrayRef{0}, at::IntArrayRef{0}, c.groups)
          .narrow(2, 0, 24 * c.stride);
  EXPECT_TRUE(close_rel(convtr.forward(x), reference, 1e-6));
}

INSTANTIATE_TEST_SUITE_P(Kernels, ConvTrStreaming,
                         ::testing::Values(ConvCase{2, 1, 1, 1, false}, ConvCase{4, 2, 1, 1, false},
                                           ConvCase{8, 4, 1, 1, false}, ConvCase{6, 4, 1, 1, false},
                                           ConvCase{16, 8, 1, 1, false},
                                           ConvCase{4, 2, 1, 12, false},
                                           ConvCase{5, 2, 1, 12, false}));

TEST(SeanetStreaming, EncoderAndDecoderStepsMatchWholeSignal) {
  c10::InferenceMode guard;
  const MimiConfig config = MimiConfig::from_file(data_path("golden/mimi_tiny/config.json"));
  SeanetEncoder encoder(config.seanet);
  SeanetDecoder decoder(config.seanet);
  randomize(encoder, 3);
  randomize(decoder, 4);
  decoder.prepare();
  const int64_t hop = config.seanet.hop_length();
  const at::Tensor audio = (at::randn({1, 1, 40 * hop}) * 0.3).to(test::device());
  const at::Tensor latent = encoder.forward(audio);
  const at::Tensor decoded = decoder.forward(latent);
  for (int64_t frames : {1, 2, 5, 8}) {
    SeanetState enc_state, dec_state;
    EXPECT_TRUE(close_rel(chunked(audio, frames * hop, 2,
                                  [&](const at::Tensor& p) { return encoder.step(p, enc_state); }),
                          latent, 1e-6));
    EXPECT_TRUE(close_rel(
        chunked(latent, frames, 2, [&](const at::Tensor& p) { return decoder.step(p, dec_state); }),
        decoded, 1e-6));
  }
}

TransformerConfig small_transformer(int context) {
  TransformerConfig t;
  t.d_model = 16;
  t.num_heads = 2;
  t.num_layers = 2;
  t.dim_feedforward = 32;
  t.context = context;
  return t;
}

TEST(TransformerStreaming, OneStepPerCallMatchesTheWindowedMaskForever) {
  c10::InferenceMode guard;
  StreamingTransformer tr(small_transformer(6));
  randomize(tr, 5);
  const at::Tensor x = at::randn({1, 30, 16}).to(test::device());
  const at::Tensor whole = tr.forward(x);
  TransformerState state = tr.init_state(1, x.options());
  const at::Tensor streamed =
      chunked(x, 1, 1, [&](const at::Tensor& p) { return tr.step(p, state); });
  EXPECT_TRUE(close_rel(streamed, whole, 1e-5));
}

TEST(TransformerStreaming, ChunksMatchWhileTheContextHoldsTheSequence) {
  c10::InferenceMode guard;
  StreamingTransformer tr(small_transformer(64));
  randomize(tr, 6);
  const at::Tensor x = at::randn({1, 40, 16}).to(test::device());
  const at::Tensor whole = tr.forward(x);
  for (int64_t chunk : {1, 2, 4, 5}) {
    TransformerState state = tr.init_state(1, x.options());
    EXPECT_TRUE(close_rel(
        chunked(x, chunk, 1, [&](const at::Tensor& p) { return tr.step(p, state); }), whole, 1e-5))
        << "chunk " << chunk;
  }
}

TEST(TransformerStreaming, ChunksFollowTheReferenceRingOnceTheContextIsFull) {
  // With chunks of 2 and a full ring, the first query of a chunk sees one key fewer than the
  // whole-signal mask gives it, exactly as in the reference: outputs agree up to the context and
  // differ after it.
  c10::InferenceMode guard;
  const int context = 8;
  StreamingTransformer tr(small_transformer(context));
  randomize(tr, 8);
  const at::Tensor x = at::randn({1, 24, 16}).to(test::device());
  const at::Tensor whole = tr.forward(x);
  TransformerState state = tr.init_state(1, x.options());
  const at::Tensor streamed =
      chunked(x, 2, 1, [&](const at::Tensor& p) { return tr.step(p, state); });
  EXPECT_TRUE(test::max_abs_below(streamed.narrow(1, 0, context), whole.narrow(1, 0, context), 1e-5));
  EXPECT_GT(max_abs(streamed.narrow(1, context, 16), whole.narrow(1, context, 16)), 1e-4);
}

TEST(MimiStreaming, LongContextStreamEqualsWholeSignal) {
  // The golden README: with a context longer than the sequence, streaming and whole-signal codes
  // are identical and the audio agrees to float rounding.
  c10::InferenceMode guard;
  MimiConfig config = MimiConfig::from_file(data_path("golden/mimi_tiny/config.json"));
  config.transformer.context = 1000;
  MimiModel model(config);
  model.load(data_path("golden/mimi_tiny/model.safetensors"), test::device());
  const at::Tensor audio =
      read_tensors(data_path("golden/mimi_tiny/io.safetensors")).at("audio").to(test::device());
  const at::Tensor codes = model.encode(audio, 8);
  MimiEncoderState enc = model.new_encoder_state(8);
  const at::Tensor stream_codes = chunked(
      audio, model.frame_size(), 2, [&](const at::Tensor& f) { return model.encode_step(f, enc); });
  EXPECT_TRUE(test::equal_codes(stream_codes, codes));
  MimiDecoderState dec = model.new_decoder_state();
  const at::Tensor stream_audio =
      chunked(codes, 1, 2, [&](const at::Tensor& c) { return model.decode_step(c, dec); });
  EXPECT_TRUE(test::max_abs_below(stream_audio, model.decode(codes), 1e-6));
}

}  // namespace
}  // namespace kyutai
