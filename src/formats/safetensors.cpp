#include "nanogpt/formats/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <memory>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "nanogpt/base/fileio.h"

namespace nanogpt {

namespace {

const std::vector<std::pair<std::string, at::ScalarType>>& dtype_names() {
  static const std::vector<std::pair<std::string, at::ScalarType>> names = {
      {"F64", at::kDouble}, {"F32", at::kFloat}, {"F16", at::kHalf}, {"BF16", at::kBFloat16}, {"I64", at::kLong},
      {"I32", at::kInt},    {"I16", at::kShort}, {"I8", at::kChar},  {"U8", at::kByte},       {"BOOL", at::kBool}};
  return names;
}

struct MappedFile {
  void* data = MAP_FAILED;
  size_t size = 0;
  ~MappedFile() {
    if (data != MAP_FAILED) ::munmap(data, size);
  }
};

}  // namespace

std::map<std::string, at::Tensor> read_safetensors(const std::string& path) {
  auto fail = [&](const std::string& why) -> SafetensorsError {
    return SafetensorsError(fmt::format("safetensors file '{}': {}", path, why));
  };
  const int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) throw fail(std::strerror(errno));
  struct stat st {};
  auto file = std::make_shared<MappedFile>();
  if (::fstat(fd, &st) == 0 && st.st_size > 0) {
    file->size = static_cast<size_t>(st.st_size);
    file->data = ::mmap(nullptr, file->size, PROT_READ, MAP_PRIVATE, fd, 0);
  }
  ::close(fd);
  if (file->data == MAP_FAILED) throw fail("empty or cannot be mapped");
  const auto* bytes = static_cast<const unsigned char*>(file->data);
  if (file->size < 8) throw fail("shorter than its 8-byte header length (truncated?)");
  uint64_t header_size = 0;
  for (int k = 0; k < 8; ++k) header_size |= static_cast<uint64_t>(bytes[k]) << (8 * k);
  if (header_size > file->size - 8) throw fail(fmt::format("header of {} bytes does not fit in the file (truncated?)", header_size));
  nlohmann::json header;
  try {
    header = nlohmann::json::parse(bytes + 8, bytes + 8 + header_size);
  } catch (const nlohmann::json::exception& e) {
    throw fail(fmt::format("header is not JSON: {}", e.what()));
  }
  if (!header.is_object()) throw fail("header is not a JSON object");
  const uint64_t data_start = 8 + header_size, data_size = file->size - data_start;
  std::map<std::string, at::Tensor> tensors;
  for (const auto& [name, info] : header.items()) {
    if (name == "__metadata__") continue;
    try {
      const std::string dtype_name = info.at("dtype").get<std::string>();
      auto dtype = std::find_if(dtype_names().begin(), dtype_names().end(),
                                [&](const auto& d) { return d.first == dtype_name; });
      if (dtype == dtype_names().end()) throw fail(fmt::format("tensor '{}' has unsupported dtype '{}'", name, dtype_name));
      const auto shape = info.at("shape").get<std::vector<int64_t>>();
      const auto offsets = info.at("data_offsets").get<std::vector<uint64_t>>();
      uint64_t numel = 1;
      for (int64_t d : shape) {
        if (d < 0 || (d > 0 && numel > data_size / static_cast<uint64_t>(d))) throw fail(fmt::format("tensor '{}' has a bad shape", name));
        numel *= static_cast<uint64_t>(d);
      }
      const uint64_t nbytes = numel * c10::elementSize(dtype->second);
      if (offsets.size() != 2 || offsets[0] > offsets[1] || offsets[1] > data_size || offsets[1] - offsets[0] != nbytes) {
        throw fail(fmt::format("tensor '{}': data_offsets do not match its {} bytes inside the {} data bytes", name, nbytes, data_size));
      }
      void* data = const_cast<unsigned char*>(bytes + data_start + offsets[0]);
      tensors[name] = at::from_blob(data, shape, [file](void*) {}, at::TensorOptions(dtype->second));
    } catch (const nlohmann::json::exception& e) {
      throw fail(fmt::format("tensor '{}': {}", name, e.what()));
    }
  }
  return tensors;
}

void write_safetensors(const std::string& path, const std::vector<std::pair<std::string, at::Tensor>>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  nlohmann::ordered_json header;
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::vector<at::Tensor> contiguous;
  uint64_t offset = 0;
  for (const auto& [name, tensor] : tensors) {
    at::Tensor t = tensor.detach().cpu().contiguous();
    auto dtype = std::find_if(dtype_names().begin(), dtype_names().end(),
                              [&](const auto& d) { return d.second == t.scalar_type(); });
    if (dtype == dtype_names().end()) throw SafetensorsError(fmt::format("tensor '{}': dtype not supported", name));
    header[name] = {{"dtype", dtype->first}, {"shape", t.sizes().vec()}, {"data_offsets", {offset, offset + t.nbytes()}}};
    offset += t.nbytes();
    contiguous.push_back(t);
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');  // the data starts 8-byte aligned
  write_file_atomically(path, [&](std::ostream& out) {
    for (int k = 0; k < 8; ++k) out.put(static_cast<char>((text.size() >> (8 * k)) & 0xff));
    out << text;
    for (const at::Tensor& t : contiguous) out.write(static_cast<const char*>(t.data_ptr()), static_cast<std::streamsize>(t.nbytes()));
  });
}

}  // namespace nanogpt
