#pragma once
// GPT-2 weights in Hugging Face's GPT2LMHeadModel layout (config.json plus model.safetensors
// or pytorch_model.bin), read with nanoGPT's from_pretrained conversion and written back.
#include <optional>
#include <string>

#include "nanogpt/model/model.h"

namespace nanogpt {

// gpt2, gpt2-medium, gpt2-large, gpt2-xl
bool is_pretrained_gpt2(const std::string& name);

// The folder holding `model_type`'s files: `configured_dir` when set, else
// $NANOGPT_PRETRAINED_DIR/<model_type>, else the Hugging Face hub cache
// ($HF_HOME or ~/.cache/huggingface). Throws naming every place it looked.
std::string find_pretrained_dir(const std::string& model_type, const std::string& configured_dir);

// The model in `dir`: shape from config.json (else from the tensors and nanoGPT's table for
// `model_type`), bias true, dropout as given. `note` receives a line when the shape differs
// from `model_type`'s standard one.
GPTConfig read_pretrained_config(const std::string& dir, const std::string& model_type, double dropout,
                                 std::string* note = nullptr);

// Copies the folder's weights into `model` (Conv1D weights transposed; attn.bias and
// attn.masked_bias buffers skipped; lm_head tied to wte). Throws naming a missing or
// misshapen tensor.
void load_pretrained_weights(const std::string& dir, GPT& model);

// Writes config.json and model.safetensors that transformers' GPT2LMHeadModel loads (and
// llama.cpp's converter reads). Needs a model with biases (bias: true), as GPT-2 has.
void export_huggingface(GPT& model, const std::string& out_dir);

}  // namespace nanogpt
