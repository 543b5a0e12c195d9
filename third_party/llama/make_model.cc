// make_model: writes a small llama-architecture GGUF model with seeded random weights and the
// tokenizer and chat template of a vocab-only GGUF file from llama.cpp's tree
// (models/ggml-vocab-phi-3.gguf), for tests and benchmarks of a real `llama-server` on CPU.
//
//   make_model VOCAB.gguf OUT.gguf [SEED]
//
// The text it generates is gibberish; tokenization, prefill and decode cost, the KV cache and
// the server's streaming format are real. Same seed and vocab -> the same bytes: the weights
// come from splitmix64 (not <random>'s distributions, whose output is implementation-defined),
// and nothing else (time, paths) is written. Built by scripts/llama.sh against the ggml of the
// pinned llama.cpp tree; uses only ggml's GGUF writer and fp16 conversion.
#include <cinttypes>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "ggml.h"
#include "gguf.h"

namespace {

// The shape: about 40 MB in f16, most of it the 32,064-token embedding and output matrices.
struct Shape {
  uint32_t n_layer = 4;
  uint32_t n_embd = 256;
  uint32_t n_head = 4;
  uint32_t n_head_kv = 4;
  uint32_t n_ff = 768;
  uint32_t n_ctx = 4096;
};

// splitmix64: a fixed, portable sequence for a seed.
class Rng {
 public:
  explicit Rng(uint64_t seed) : state_(seed) {}
  uint64_t Next() {
    uint64_t z = (state_ += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  // Uniform in [-scale, scale), from the top 24 bits (exact in a float).
  float Uniform(float scale) {
    const float u = static_cast<float>(Next() >> 40) / static_cast<float>(1u << 24);
    return (2.0f * u - 1.0f) * scale;
  }

 private:
  uint64_t state_;
};

[[noreturn]] void Die(const std::string& message) {
  std::fprintf(stderr, "make_model: %s\n", message.c_str());
  std::exit(1);
}

// Keeps only the vocab file's tokenizer.* keys (tokens, scores, types, special ids, the chat
// template); the architecture's keys are written fresh for the small shape.
void CopyTokenizer(gguf_context* out, const char* vocab_path) {
  gguf_init_params params{/*no_alloc=*/true, /*ctx=*/nullptr};
  gguf_context* vocab = gguf_init_from_file(vocab_path, params);
  if (vocab == nullptr) Die(std::string("cannot read the vocab file `") + vocab_path + "`");
  if (gguf_find_key(vocab, "tokenizer.chat_template") < 0) Die("the vocab file has no chat template");
  gguf_set_kv(out, vocab);
  gguf_free(vocab);
  std::vector<std::string> drop;
  for (int64_t i = 0; i < gguf_get_n_kv(out); ++i) {
    const std::string key = gguf_get_key(out, i);
    if (key.rfind("tokenizer.", 0) != 0) drop.push_back(key);
  }
  for (const std::string& key : drop) gguf_remove_key(out, key.c_str());
}

uint32_t VocabSize(const gguf_context* out) {
  const int64_t id = gguf_find_key(out, "tokenizer.ggml.tokens");
  if (id < 0) Die("the vocab file has no `tokenizer.ggml.tokens`");
  return static_cast<uint32_t>(gguf_get_arr_n(out, id));
}

void SetHyperparameters(gguf_context* out, const Shape& s, uint32_t n_vocab, uint64_t seed) {
  gguf_set_val_str(out, "general.architecture", "llama");
  const std::string name = "landlord-random-llama-seed-" + std::to_string(seed);
  gguf_set_val_str(out, "general.name", name.c_str());
  gguf_set_val_u32(out, "general.file_type", 1);  // mostly f16
  gguf_set_val_u32(out, "general.quantization_version", 2);
  gguf_set_val_u32(out, "llama.vocab_size", n_vocab);
  gguf_set_val_u32(out, "llama.context_length", s.n_ctx);
  gguf_set_val_u32(out, "llama.embedding_length", s.n_embd);
  gguf_set_val_u32(out, "llama.feed_forward_length", s.n_ff);
  gguf_set_val_u32(out, "llama.block_count", s.n_layer);
  gguf_set_val_u32(out, "llama.attention.head_count", s.n_head);
  gguf_set_val_u32(out, "llama.attention.head_count_kv", s.n_head_kv);
  gguf_set_val_u32(out, "llama.rope.dimension_count", s.n_embd / s.n_head);
  gguf_set_val_f32(out, "llama.rope.freq_base", 10000.0f);
  gguf_set_val_f32(out, "llama.attention.layer_norm_rms_epsilon", 1e-5f);
}

// Adds one tensor: 2-D weights in f16, uniform in ±1/sqrt(fan-in) so activations stay in
// range; norms (1-D) in f32, near 1.
void AddTensor(gguf_context* out, ggml_context* mem, Rng& rng, const std::string& name, int64_t ne0,
               int64_t ne1) {
  const bool norm = ne1 == 1;
  ggml_tensor* t = norm ? ggml_new_tensor_1d(mem, GGML_TYPE_F32, ne0)
                        : ggml_new_tensor_2d(mem, GGML_TYPE_F16, ne0, ne1);
  ggml_set_name(t, name.c_str());
  const int64_t n = ne0 * ne1;
  std::vector<float> values(static_cast<size_t>(n));
  const float scale = norm ? 0.1f : 1.0f / std::sqrt(static_cast<float>(ne0));
  for (float& v : values) v = norm ? 1.0f + rng.Uniform(scale) : rng.Uniform(scale);
  if (norm) {
    std::memcpy(t->data, values.data(), values.size() * sizeof(float));
  } else {
    ggml_fp32_to_fp16_row(values.data(), static_cast<ggml_fp16_t*>(t->data), n);
  }
  gguf_add_tensor(out, t);
}

void AddWeights(gguf_context* out, ggml_context* mem, const Shape& s, uint32_t n_vocab, uint64_t seed) {
  Rng rng(seed);
  const int64_t e = s.n_embd, kv = static_cast<int64_t>(s.n_embd / s.n_head) * s.n_head_kv;
  AddTensor(out, mem, rng, "token_embd.weight", e, n_vocab);
  for (uint32_t l = 0; l < s.n_layer; ++l) {
    const std::string b = "blk." + std::to_string(l) + ".";
    AddTensor(out, mem, rng, b + "attn_norm.weight", e, 1);
    AddTensor(out, mem, rng, b + "attn_q.weight", e, e);
    AddTensor(out, mem, rng, b + "attn_k.weight", e, kv);
    AddTensor(out, mem, rng, b + "attn_v.weight", e, kv);
    AddTensor(out, mem, rng, b + "attn_output.weight", e, e);
    AddTensor(out, mem, rng, b + "ffn_norm.weight", e, 1);
    AddTensor(out, mem, rng, b + "ffn_gate.weight", e, s.n_ff);
    AddTensor(out, mem, rng, b + "ffn_up.weight", e, s.n_ff);
    AddTensor(out, mem, rng, b + "ffn_down.weight", s.n_ff, e);
  }
  AddTensor(out, mem, rng, "output_norm.weight", e, 1);
  AddTensor(out, mem, rng, "output.weight", e, n_vocab);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3 || argc > 4) Die("usage: make_model VOCAB.gguf OUT.gguf [SEED]");
  const uint64_t seed = argc == 4 ? std::strtoull(argv[3], nullptr, 10) : 1;
  const Shape shape;
  gguf_context* out = gguf_init_empty();
  CopyTokenizer(out, argv[1]);
  const uint32_t n_vocab = VocabSize(out);
  SetHyperparameters(out, shape, n_vocab, seed);

  const size_t per_layer = 4ull * shape.n_embd * shape.n_embd + 3ull * shape.n_embd * shape.n_ff;
  const size_t bytes = 2 * (2ull * shape.n_embd * n_vocab + shape.n_layer * per_layer) +
                       4ull * (2 * shape.n_layer + 1) * shape.n_embd + 64 * ggml_tensor_overhead();
  ggml_init_params mem_params{bytes, nullptr, /*no_alloc=*/false};
  ggml_context* mem = ggml_init(mem_params);
  if (mem == nullptr) Die("ggml_init failed");
  AddWeights(out, mem, shape, n_vocab, seed);

  const std::string tmp = std::string(argv[2]) + ".tmp";
  if (!gguf_write_to_file(out, tmp.c_str(), /*only_meta=*/false)) Die("cannot write `" + tmp + "`");
  if (std::rename(tmp.c_str(), argv[2]) != 0) Die(std::string("cannot rename to `") + argv[2] + "`");
  std::printf("make_model: %s: llama, %u layers, n_embd %u, vocab %u, seed %" PRIu64 "\n", argv[2],
              shape.n_layer, shape.n_embd, n_vocab, seed);
  gguf_free(out);
  ggml_free(mem);
  return 0;
}
