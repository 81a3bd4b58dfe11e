#include "kyutai/model/seanet.h"

#include <ATen/ATen.h>

namespace kyutai {

namespace {

Conv1dOptions conv_options(const SeanetConfig& c, int in, int out, int kernel, int stride = 1,
                           int dilation = 1) {
  Conv1dOptions o;
  o.in = in;
  o.out = out;
  o.kernel = kernel;
  o.stride = stride;
  o.dilation = dilation;
  o.replicate = c.pad_mode == PadMode::replicate;
  return o;
}

std::vector<SeanetResBlock> make_blocks(const SeanetConfig& c, int dim) {
  std::vector<SeanetResBlock> blocks;
  const int hidden = dim / c.compress;
  int dilation = 1;
  for (int j = 0; j < c.n_residual_layers; ++j, dilation *= c.dilation_base) {
    SeanetResBlock b{
        StreamingConv1d(conv_options(c, dim, hidden, c.residual_kernel_size, 1, dilation)),
        StreamingConv1d(conv_options(c, hidden, dim, 1)),
        {}};
    if (!c.true_skip) b.shortcut.emplace_back(conv_options(c, dim, dim, 1));
    blocks.push_back(std::move(b));
  }
  return blocks;
}

void declare_block(SeanetResBlock& b, const Params& p) {
  b.conv1.declare(p.sub("block").sub(1));
  b.conv2.declare(p.sub("block").sub(3));
  for (auto& s : b.shortcut) s.declare(p.sub("shortcut"));
}

template <class Conv>
at::Tensor run_block(const SeanetResBlock& b, const at::Tensor& x, Conv& conv) {
  at::Tensor skip = b.shortcut.empty() ? x : conv(b.shortcut[0], x);
  return skip + conv(b.conv2, at::elu(conv(b.conv1, at::elu(x))));
}

// Conv appliers: the whole-signal one, and the streaming one that hands each convolution its
// own state, creating it on first use.
auto whole_conv() {
  return [](const auto& c, const at::Tensor& x) { return c.forward(x); };
}

template <class Layer, class State>
auto stream_conv(std::vector<State>& states) {
  return [&states, next = size_t{0}](const Layer& c, const at::Tensor& x) mutable {
    if (next == states.size()) states.push_back(c.init_state(x.size(0), x.options()));
    return c.step(x, states[next++]);
  };
}

// The streaming applier for several streams, each with its own states (batch 1 each).
template <class Layer, class State>
auto stream_conv_rows(const std::vector<std::vector<State>*>& rows) {
  return [&rows, next = size_t{0}](const Layer& c, const at::Tensor& x) mutable {
    std::vector<State*> states;
    for (std::vector<State>* row : rows) {
      if (next == row->size()) row->push_back(c.init_state(1, x.options()));
      states.push_back(&(*row)[next]);
    }
    ++next;
    return c.step(x, states);
  };
}

}  // namespace

SeanetEncoder::SeanetEncoder(const SeanetConfig& config)
    : config_(config),
      first_(conv_options(config, config.channels, config.n_filters, config.kernel_size)),
      last_(conv_options(config, config.n_filters << config.ratios.size(), config.dimension,
                         config.last_kernel_size)) {
  int mult = 1;
  for (auto it = config.ratios.rbegin(); it != config.ratios.rend(); ++it, mult *= 2) {
    const int dim = mult * config.n_filters;
    stages_.push_back({make_blocks(config, dim),
                       StreamingConv1d(conv_options(config, dim, 2 * dim, 2 * *it, *it))});
  }
}

void SeanetEncoder::declare(const Params& p) {
  const Params m = p.sub("model");
  int index = 0;
  first_.declare(m.sub(index++));
  for (auto& stage : stages_) {
    for (auto& b : stage.blocks) declare_block(b, m.sub(index++));
    ++index;  // ELU
    stage.down.declare(m.sub(index++));
  }
  ++index;  // ELU
  last_.declare(m.sub(index));
}

template <class Conv>
at::Tensor SeanetEncoder::run(at::Tensor x, Conv& conv) const {
  x = conv(first_, x);
  for (const auto& stage : stages_) {
    for (const auto& b : stage.blocks) x = run_block(b, x, conv);
    x = conv(stage.down, at::elu(x));
  }
  return conv(last_, at::elu(x));
}

at::Tensor SeanetEncoder::forward(const at::Tensor& x) const {
  auto conv = whole_conv();
  return run(x, conv);
}

at::Tensor SeanetEncoder::step(const at::Tensor& x, SeanetState& state) const {
  auto conv = stream_conv<StreamingConv1d>(state.convs);
  return run(x, conv);
}

at::Tensor SeanetEncoder::step(const at::Tensor& x, const std::vector<SeanetState*>& rows) const {
  std::vector<std::vector<ConvState>*> convs;
  for (SeanetState* row : rows) convs.push_back(&row->convs);
  auto conv = stream_conv_rows<StreamingConv1d>(convs);
  return run(x, conv);
}

SeanetDecoder::SeanetDecoder(const SeanetConfig& config)
    : config_(config),
      first_(conv_options(config, config.dimension, config.n_filters << config.ratios.size(),
                          config.kernel_size)),
      last_(conv_options(config, config.n_filters, config.channels, config.last_kernel_size)) {
  int mult = 1 << config.ratios.size();
  for (int ratio : config.ratios) {
    const int dim = mult * config.n_filters;
    Conv1dOptions up = conv_options(config, dim, dim / 2, 2 * ratio, ratio);
    stages_.push_back({StreamingConvTranspose1d(up), make_blocks(config, dim / 2)});
    mult /= 2;
  }
}

void SeanetDecoder::declare(const Params& p) {
  const Params m = p.sub("model");
  int index = 0;
  first_.declare(m.sub(index++));
  for (auto& stage : stages_) {
    ++index;  // ELU
    stage.up.declare(m.sub(index++));
    for (auto& b : stage.blocks) declare_block(b, m.sub(index++));
  }
  ++index;  // ELU
  last_.declare(m.sub(index));
}

void SeanetResBlock::prepare() {
  conv1.prepare();
  conv2.prepare();
  for (auto& c : shortcut) c.prepare();
}

void SeanetEncoder::prepare() {
  first_.prepare();
  for (auto& stage : stages_) {
    for (auto& b : stage.blocks) b.prepare();
    stage.down.prepare();
  }
  last_.prepare();
}

void SeanetDecoder::prepare() {
  first_.prepare();
  for (auto& stage : stages_) {
    stage.up.prepare();
    for (auto& b : stage.blocks) b.prepare();
  }
  last_.prepare();
}

template <class Conv, class ConvTr>
at::Tensor SeanetDecoder::run(at::Tensor x, Conv& conv, ConvTr& convtr) const {
  x = conv(first_, x);
  for (const auto& stage : stages_) {
    x = convtr(stage.up, at::elu(x));
    for (const auto& b : stage.blocks) x = run_block(b, x, conv);
  }
  return conv(last_, at::elu(x));
}

at::Tensor SeanetDecoder::forward(const at::Tensor& x) const {
  auto conv = whole_conv();
  auto convtr = whole_conv();
  return run(x, conv, convtr);
}

at::Tensor SeanetDecoder::step(const at::Tensor& x, SeanetState& state) const {
  auto conv = stream_conv<StreamingConv1d>(state.convs);
  auto convtr = stream_conv<StreamingConvTranspose1d>(state.convtrs);
  return run(x, conv, convtr);
}

}  // namespace kyutai
