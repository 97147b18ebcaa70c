#include "nanogpt/formats/torch_file.h"

#include <caffe2/serialize/inline_container.h>

#include <filesystem>

#include <fmt/format.h>

#include "nanogpt/base/fileio.h"
#include "formats/zip_crc.h"

namespace nanogpt {

namespace {

constexpr const char* kRebuildTensor = "torch._utils._rebuild_tensor_v2";

std::string storage_type_of(at::ScalarType dtype) {
  for (const auto& [name, type] : torch_storage_types()) {
    if (type == dtype && name != "torch.UntypedStorage") return name;
  }
  throw PickleError(fmt::format("tensors of dtype {} cannot be saved", c10::toString(dtype)));
}

std::string first_line(const std::string& text) { return text.substr(0, std::min(text.find('\n'), size_t{300})); }

}  // namespace

TorchFile::TorchFile(const std::string& path) : path_(path) {
  if (!std::filesystem::is_regular_file(path)) {
    throw PickleError(fmt::format("'{}' {}", path, std::filesystem::exists(path) ? "is not a file" : "does not exist"));
  }
  std::string pickle;
  try {
    reader_ = std::make_unique<caffe2::serialize::PyTorchStreamReader>(path);
    for (const auto& [name, crc] : zip_crc::recorded_crcs(path)) crcs_[name.substr(name.find('/') + 1)] = crc;
    if (!reader_->hasRecord("data.pkl")) {
      throw PickleError(fmt::format("'{}' is a zip file without data.pkl: not written by torch.save", path));
    }
    if (reader_->hasRecord("byteorder")) {
      auto [order, size] = reader_->getRecord("byteorder");
      check_crc("byteorder", order.get(), size);
      if (std::string(static_cast<const char*>(order.get()), size) != "little") {
        throw PickleError(fmt::format("'{}' was written on a big-endian machine; that is not supported", path));
      }
    }
    auto [data, size] = reader_->getRecord("data.pkl");
    check_crc("data.pkl", data.get(), size);
    pickle.assign(static_cast<const char*>(data.get()), size);
  } catch (const c10::Error& e) {
    throw PickleError(fmt::format("'{}' is not a readable torch.save zip file (truncated, or the legacy "
                                  "non-zip format?): {}",
                                  path, first_line(e.what())));
  } catch (const PickleError&) {
    throw;
  } catch (const std::runtime_error& e) {  // zip_crc::recorded_crcs
    throw PickleError(e.what());
  }
  root_ = parse_torch_pickle(pickle, path + ":data.pkl", recipes_);
}

TorchFile::~TorchFile() = default;
TorchFile::TorchFile(TorchFile&&) noexcept = default;

bool TorchFile::is_tensor(const PickleValue& value) const {
  return value.kind == PickleValue::Kind::object && value.text == "tensor";
}

at::Tensor TorchFile::tensor(const PickleValue& value, const std::string& what) {
  if (!is_tensor(value)) throw PickleError(fmt::format("{}: '{}' is not a tensor", path_, what));
  const TensorRecipe& recipe = recipes_.at(static_cast<size_t>(value.handle));
  return storage(recipe).as_strided(recipe.sizes, recipe.strides, recipe.offset);
}

at::Tensor TorchFile::storage(const TensorRecipe& recipe) {
  auto found = storages_.find(recipe.storage_key);
  if (found != storages_.end()) {
    if (found->second.scalar_type() != recipe.dtype || found->second.numel() != recipe.storage_numel) {
      throw PickleError(fmt::format("{}: storage '{}' is used with two dtypes or sizes", path_, recipe.storage_key));
    }
    return found->second;
  }
  const std::string record = "data/" + recipe.storage_key;
  at::Tensor bytes;
  try {
    if (!reader_->hasRecord(record)) throw PickleError(fmt::format("{}: record '{}' is missing", path_, record));
    auto [data, size] = reader_->getRecord(record);
    const int64_t expected = recipe.storage_numel * static_cast<int64_t>(c10::elementSize(recipe.dtype));
    if (static_cast<int64_t>(size) != expected) {
      throw PickleError(fmt::format("{}: record '{}' holds {} bytes, its storage needs {}", path_, record, size, expected));
    }
    check_crc(record, data.get(), size);
    auto owner = std::make_shared<at::DataPtr>(std::move(data));
    bytes = at::from_blob(owner->get(), {recipe.storage_numel}, [owner](void*) {}, at::TensorOptions(recipe.dtype));
  } catch (const c10::Error& e) {
    throw PickleError(fmt::format("{}: cannot read record '{}': {}", path_, record, first_line(e.what())));
  }
  storages_.emplace(recipe.storage_key, bytes);
  return bytes;
}

void TorchFile::check_crc(const std::string& record, const void* data, size_t size) const {
  const auto recorded = crcs_.find(record);
  if (recorded == crcs_.end()) throw PickleError(fmt::format("{}: record '{}' has no central directory entry", path_, record));
  const uint32_t actual = zip_crc::crc32(data, size);
  if (actual != recorded->second) {
    throw PickleError(fmt::format("{}: record '{}' is corrupt: its CRC-32 is {:08x} where the zip recorded {:08x} "
                                  "(a damaged copy or disk?)",
                                  path_, record, actual, recorded->second));
  }
}

PickleRef TorchFileWriter::tensor(const at::Tensor& tensor) {
  const c10::Storage& storage = tensor.storage();
  auto found = storages_.find(storage.unsafeGetStorageImpl());
  if (found == storages_.end()) {
    const int64_t numel = static_cast<int64_t>(storage.nbytes() / tensor.element_size());
    at::Tensor whole = at::empty({0}, tensor.options()).set_(storage, 0, {numel}, {1}).detach().cpu();
    found = storages_.emplace(storage.unsafeGetStorageImpl(), Storage{std::to_string(storages_.size()), whole}).first;
  }
  const Storage& saved = found->second;
  PickleRef pid = pickle_tuple({pickle_string("storage"), pickle_global(storage_type_of(tensor.scalar_type())),
                                pickle_string(saved.key), pickle_string("cpu"), pickle_int(saved.bytes.numel())});
  std::vector<PickleRef> sizes, strides;
  for (int64_t s : tensor.sizes()) sizes.push_back(pickle_int(s));
  for (int64_t s : tensor.strides()) strides.push_back(pickle_int(s));
  return pickle_reduce(pickle_global(kRebuildTensor),
                       pickle_tuple({pickle_persistent_id(pid), pickle_int(tensor.storage_offset()),
                                     pickle_tuple(std::move(sizes)), pickle_tuple(std::move(strides)),
                                     pickle_bool(false), pickle_ordered_dict({})}));
}

void TorchFileWriter::save(const std::string& path, const PickleValue& root) {
  const std::string pickle = write_pickle(root);
  write_file_atomically(path, [&](std::ostream& out) {
    try {
      // A short write makes the writer throw, and throw again from its destructor, which
      // terminates the process; so the sink takes every byte and a failed stream (disk full)
      // is reported by write_file_atomically once the writer is done.
      caffe2::serialize::PyTorchStreamWriter writer([&out](const void* data, size_t size) -> size_t {
        if (out) out.write(static_cast<const char*>(data), static_cast<std::streamsize>(size));
        return size;
      });
      writer.writeRecord("data.pkl", pickle.data(), pickle.size());
      for (const auto& [impl, storage] : storages_) {
        writer.writeRecord("data/" + storage.key, storage.bytes.data_ptr(), storage.bytes.nbytes());
      }
      writer.writeEndOfFile();
    } catch (const c10::Error&) {
      out.setstate(std::ios::badbit);  // reported, and the temporary file removed, by the caller
    }
  });
}

}  // namespace nanogpt
