#pragma once
// The safetensors format (Hugging Face): an 8-byte little-endian header length, a JSON header
// {name: {dtype, shape, data_offsets}, "__metadata__": {...}}, then the raw tensor bytes.
#include <ATen/ATen.h>

#include <map>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace nanogpt {

struct SafetensorsError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Every tensor of `path`, on the CPU, viewing a read-only memory map of the file (kept alive
// by the tensors). Errors name the file and the tensor.
std::map<std::string, at::Tensor> read_safetensors(const std::string& path);

// Writes the tensors in the given order, atomically; metadata goes to "__metadata__".
void write_safetensors(const std::string& path, const std::vector<std::pair<std::string, at::Tensor>>& tensors,
                       const std::map<std::string, std::string>& metadata = {{"format", "pt"}});

}  // namespace nanogpt
