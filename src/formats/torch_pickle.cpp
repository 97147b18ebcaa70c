#include "nanogpt/formats/torch_pickle.h"

#include <fmt/format.h>

namespace nanogpt {

const std::map<std::string, c10::ScalarType>& torch_storage_types() {
  using c10::ScalarType;
  static const std::map<std::string, ScalarType> types = {
      {"torch.FloatStorage", ScalarType::Float},   {"torch.DoubleStorage", ScalarType::Double},
      {"torch.HalfStorage", ScalarType::Half},     {"torch.BFloat16Storage", ScalarType::BFloat16},
      {"torch.LongStorage", ScalarType::Long},     {"torch.IntStorage", ScalarType::Int},
      {"torch.ShortStorage", ScalarType::Short},   {"torch.CharStorage", ScalarType::Char},
      {"torch.ByteStorage", ScalarType::Byte},     {"torch.BoolStorage", ScalarType::Bool},
      {"torch.UntypedStorage", ScalarType::Byte}};
  return types;
}

namespace {

constexpr const char* kRebuildTensor = "torch._utils._rebuild_tensor_v2";

int64_t integer_of(const PickleValue& v, const char* what) {
  if (v.kind != PickleValue::Kind::integer) throw PickleError(fmt::format("{} is not an integer", what));
  return v.integer;
}

std::vector<int64_t> integers_of(const PickleValue& v, const char* what) {
  if (v.kind != PickleValue::Kind::tuple) throw PickleError(fmt::format("{} is not a tuple", what));
  std::vector<int64_t> out;
  for (const auto& item : v.items) {
    out.push_back(integer_of(*item, what));
    if (out.back() < 0) throw PickleError(fmt::format("{} has a negative entry", what));
  }
  return out;
}

// The allow-list: storages become "storage" objects, _rebuild_tensor_v2 turns one into a
// "tensor" object; both index `recipes`, so no bytes are read while parsing.
class TorchUnpickler final : public PickleExtensions {
 public:
  explicit TorchUnpickler(std::vector<TensorRecipe>& recipes) : recipes_(recipes) {}

  bool allows_global(const std::string& name) const override {
    return name == "collections.OrderedDict" || name == kRebuildTensor || name == "torch._utils._rebuild_parameter" ||
           name == "torch._utils._rebuild_parameter_with_state" || torch_storage_types().count(name) > 0;
  }

  PickleRef call(const PickleValue& callable, const PickleValue& args) override {
    const std::string& name = callable.text;
    if (name == "collections.OrderedDict") {
      if (!args.items.empty()) throw PickleError("OrderedDict is built empty and then filled");
      return pickle_dict({});
    }
    if (name == kRebuildTensor) return rebuild_tensor(args);
    if (name.rfind("torch._utils._rebuild_parameter", 0) == 0) {  // a Parameter is its data here
      if (args.items.empty() || !is_object(*args.items[0], "tensor")) throw PickleError(name + " needs a tensor");
      return args.items[0];
    }
    throw PickleError(fmt::format("'{}' is a storage type, not something to call", name));
  }

  void build(PickleValue& target, const PickleValue&) override {
    // A state_dict's OrderedDict carries `_metadata` (module versions); nothing here needs it.
    if (target.kind != PickleValue::Kind::dict) throw PickleError("BUILD on something other than an OrderedDict");
  }

  PickleRef persistent_load(const PickleValue& pid) override {
    if (pid.kind != PickleValue::Kind::tuple || pid.items.size() != 5 || pid.items[0]->text != "storage" ||
        pid.items[1]->kind != PickleValue::Kind::global || torch_storage_types().count(pid.items[1]->text) == 0 ||
        pid.items[2]->kind != PickleValue::Kind::string) {
      throw PickleError("persistent id is not ('storage', torch.<type>Storage, key, location, numel)");
    }
    TensorRecipe recipe;
    recipe.dtype = torch_storage_types().at(pid.items[1]->text);
    recipe.storage_key = pid.items[2]->text;
    recipe.storage_numel = integer_of(*pid.items[4], "storage size");
    if (recipe.storage_numel < 0) throw PickleError("negative storage size");
    recipe.offset = 0;
    recipe.sizes = {recipe.storage_numel};
    recipe.strides = {1};
    return object("storage", std::move(recipe));
  }

 private:
  PickleRef rebuild_tensor(const PickleValue& args) {
    if (args.items.size() < 6 || !is_object(*args.items[0], "storage")) {
      throw PickleError(fmt::format("{} needs (storage, offset, size, stride, requires_grad, hooks)", kRebuildTensor));
    }
    TensorRecipe recipe = recipes_.at(static_cast<size_t>(args.items[0]->handle));
    recipe.offset = integer_of(*args.items[1], "tensor offset");
    recipe.sizes = integers_of(*args.items[2], "tensor size");
    recipe.strides = integers_of(*args.items[3], "tensor stride");
    if (recipe.sizes.size() != recipe.strides.size()) throw PickleError("tensor size and stride differ in length");
    int64_t last = recipe.offset;  // the furthest element the view reaches
    for (size_t d = 0; d < recipe.sizes.size(); ++d) {
      if (recipe.sizes[d] == 0) last = -1;
      if (last < 0) break;
      if (recipe.sizes[d] > 1 && recipe.strides[d] > (recipe.storage_numel - last) / (recipe.sizes[d] - 1)) {
        last = recipe.storage_numel;  // past the end (written this way to stay clear of overflow)
        break;
      }
      last += (recipe.sizes[d] - 1) * recipe.strides[d];
    }
    if (recipe.offset < 0 || last >= recipe.storage_numel) {
      throw PickleError(fmt::format("a tensor of size {} reaches past its storage '{}' of {} elements",
                                    fmt::join(recipe.sizes, "x"), recipe.storage_key, recipe.storage_numel));
    }
    return object("tensor", std::move(recipe));
  }

  static bool is_object(const PickleValue& v, const char* type) {
    return v.kind == PickleValue::Kind::object && v.text == type;
  }

  PickleRef object(const char* type, TensorRecipe recipe) {
    auto v = std::make_shared<PickleValue>();
    v->kind = PickleValue::Kind::object;
    v->text = type;
    v->handle = static_cast<int64_t>(recipes_.size());
    recipes_.push_back(std::move(recipe));
    return v;
  }

  std::vector<TensorRecipe>& recipes_;
};

}  // namespace

PickleRef parse_torch_pickle(const std::string& data, const std::string& origin, std::vector<TensorRecipe>& recipes) {
  TorchUnpickler unpickler(recipes);
  return parse_pickle(data, origin, &unpickler);
}

}  // namespace nanogpt
