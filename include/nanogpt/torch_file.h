#pragma once
// Files in torch.save's zip format (`data.pkl` plus one record per storage), read and written
// without Python: what nanoGPT's ckpt.pt is. Reading is an allow-list, like
// torch.load(weights_only=True): plain data, collections.OrderedDict, tensors rebuilt by
// torch._utils._rebuild_tensor_v2 / _rebuild_parameter over torch.*Storage records. Any other
// global is refused, never executed.
#include <ATen/ATen.h>

#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "nanogpt/pickle.h"

namespace caffe2::serialize {
class PyTorchStreamReader;
}

namespace nanogpt {

class TorchFile {
 public:
  // Reads data.pkl; storages are read when a tensor is first asked for. Throws PickleError
  // naming `path` for anything malformed, truncated or not allowed.
  explicit TorchFile(const std::string& path);
  ~TorchFile();
  TorchFile(TorchFile&&) noexcept;

  const PickleValue& root() const { return *root_; }
  const std::string& path() const { return path_; }
  bool is_tensor(const PickleValue& value) const;
  // The CPU tensor a value stands for; tensors over one storage share it, as in Python.
  at::Tensor tensor(const PickleValue& value, const std::string& what);

  struct TensorRecipe {  // _rebuild_tensor_v2's arguments
    std::string storage_key;
    at::ScalarType dtype;
    int64_t storage_numel;
    int64_t offset;
    std::vector<int64_t> sizes, strides;
  };

 private:
  at::Tensor storage(const TensorRecipe& recipe);

  std::string path_;
  std::unique_ptr<caffe2::serialize::PyTorchStreamReader> reader_;
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
