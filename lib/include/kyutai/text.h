// The text side of Moshi: the sentencepiece tokenizer and the turning of generated tokens into
// text. Torch-free.
#pragma once

#include <memory>
#include <string>
#include <vector>

namespace kyutai {

class TextTokenizer {
 public:
  // Throws NotFoundError for a missing file, FormatError for a file sentencepiece cannot read.
  static std::shared_ptr<const TextTokenizer> load(const std::string& path);
  ~TextTokenizer();
  TextTokenizer(const TextTokenizer&) = delete;
  TextTokenizer& operator=(const TextTokenizer&) = delete;

  int vocab_size() const { return static_cast<int>(pieces_.size()); }
  // The piece of a token ("▁the", "<0xE2>"); empty for ids outside the vocabulary.
  const std::string& piece(int id) const;
  bool is_byte(int id) const;
  // The end-of-sentence token ("</s>"), -1 when the model has none.
  int eos_id() const { return eos_id_; }
  std::vector<int> encode(const std::string& text) const;
  std::string decode(const std::vector<int>& ids) const;
  const std::string& path() const { return path_; }

 private:
  TextTokenizer() = default;
  void* handle_ = nullptr;  // sentencepiece, behind the shim (see sentencepiece_shim.cpp)
  std::string path_;
  std::vector<std::string> pieces_;
  std::vector<bool> bytes_;
  int eos_id_ = -1;
};

// Text from generated tokens, piece by piece, as Kyutai's server shows it: padding tokens are
// not text and '▁' becomes a space. Byte pieces (<0xC3><0xA9>) are held until they complete a
// UTF-8 character, so every string returned is whole, valid UTF-8.
class TextStream {
 public:
  // `skip` are the padding ids (Moshi: existing_text_padding_id and 0).
  TextStream(std::shared_ptr<const TextTokenizer> tokenizer, std::vector<int> skip);
  // The text this token completes; often empty.
  std::string push(int token);
  // The same for a piece given directly: "▁word", or "<0xHH>" when `is_byte`.
  std::string push_piece(const std::string& piece, bool is_byte);
  // Whatever is still held, with incomplete bytes replaced by U+FFFD; resets the stream.
  std::string flush();
  void reset() { pending_.clear(); }

 private:
  std::shared_ptr<const TextTokenizer> tokenizer_;
  std::vector<int> skip_;
  std::string pending_;  // bytes of an unfinished UTF-8 character
};

// Length of the longest prefix of `s` made of complete UTF-8 characters; invalid bytes count
// as complete (they are replaced when emitted).
size_t complete_utf8_prefix(const std::string& s);
// `s` with every invalid UTF-8 sequence replaced by U+FFFD.
std::string sanitize_utf8(const std::string& s);

}  // namespace kyutai
