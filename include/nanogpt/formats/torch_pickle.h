#pragma once
// The pickle of a torch.save file (data.pkl), read with an allow-list like
// torch.load(weights_only=True): plain data, collections.OrderedDict, and tensors rebuilt by
// torch._utils._rebuild_tensor_v2 / _rebuild_parameter over torch.*Storage persistent ids.
// Any other global is refused by name, never executed. Tensors come back as recipes (which
// storage record, dtype, offset, sizes, strides), checked against their storage's size;
// torch_file.h reads the bytes. Needs only c10's ScalarType, so the fuzzer builds it alone.
#include <c10/core/ScalarType.h>

#include <map>
#include <string>
#include <vector>

#include "nanogpt/formats/pickle.h"

namespace nanogpt {

struct TensorRecipe {  // _rebuild_tensor_v2's arguments
  std::string storage_key;
  c10::ScalarType dtype = c10::ScalarType::Float;
  int64_t storage_numel = 0;
  int64_t offset = 0;
  std::vector<int64_t> sizes, strides;
};

// "torch.FloatStorage" -> Float, ... (UntypedStorage holds bytes)
const std::map<std::string, c10::ScalarType>& torch_storage_types();

// Values that stand for a tensor are PickleValue objects with text "tensor" whose `handle`
// indexes `recipes` (storages are objects with text "storage").
PickleRef parse_torch_pickle(const std::string& data, const std::string& origin, std::vector<TensorRecipe>& recipes);

}  // namespace nanogpt
