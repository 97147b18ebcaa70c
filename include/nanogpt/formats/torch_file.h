#pragma once
// Files in torch.save's zip format (`data.pkl` plus one record per storage), read and written
// without Python: what nanoGPT's ckpt.pt is. data.pkl is read by torch_pickle.h's allow-list.
#include <ATen/ATen.h>

#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "nanogpt/formats/pickle.h"
#include "nanogpt/formats/torch_pickle.h"

namespace caffe2::serialize {
class PyTorchStreamReader;
}

namespace nanogpt {

class TorchFile {
 public:
  // Reads data.pkl; storages are read when a tensor is first asked for. Every record read is
  // checked against the CRC-32 the zip recorded for it. Throws PickleError naming `path` for
  // anything malformed, truncated, corrupt or not allowed.
  explicit TorchFile(const std::string& path);
  ~TorchFile();
  TorchFile(TorchFile&&) noexcept;

  const PickleValue& root() const { return *root_; }
  const std::string& path() const { return path_; }
  bool is_tensor(const PickleValue& value) const;
  // The CPU tensor a value stands for; tensors over one storage share it, as in Python.
  at::Tensor tensor(const PickleValue& value, const std::string& what);

 private:
  at::Tensor storage(const TensorRecipe& recipe);
  // Throws PickleError unless the bytes of `record` match the CRC-32 the zip holds for it.
  void check_crc(const std::string& record, const void* data, size_t size) const;

  std::string path_;
  std::unique_ptr<caffe2::serialize::PyTorchStreamReader> reader_;
  std::map<std::string, uint32_t> crcs_;  // record name (without the archive's folder) -> CRC-32
  PickleRef root_;
  std::vector<TensorRecipe> recipes_;  // indexed by PickleValue::handle
  std::unordered_map<std::string, at::Tensor> storages_;
};

// Builds the pickle of a torch.save file: tensor() gives the value that pickles as a tensor,
// save() writes data.pkl and every storage record through a temporary file and a rename.
class TorchFileWriter {
 public:
  PickleRef tensor(const at::Tensor& tensor);
  void save(const std::string& path, const PickleValue& root);

 private:
  struct Storage {
    std::string key;
    at::Tensor bytes;  // the whole storage, on the CPU
  };
  std::map<const void*, Storage> storages_;  // by StorageImpl, so shared storage stays shared
};

}  // namespace nanogpt
