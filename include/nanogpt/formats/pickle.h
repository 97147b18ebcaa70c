#pragma once
// A reader for Python pickles (protocols 2 to 5, the opcodes `pickle.dump` emits for plain
// data: dicts, lists, tuples, strings, bytes, numbers, booleans, None). It executes nothing:
// a pickle that names a global (a class or function, as `os.system`) is refused unless a
// PickleExtensions allow-lists it (torch_file.h does, for torch.save's tensors), and so are
// self-containing structures and nesting deeper than kMaxPickleDepth.
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace nanogpt {

struct PickleError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

constexpr int kMaxPickleDepth = 1000;

struct PickleValue;
using PickleRef = std::shared_ptr<PickleValue>;  // shared: the memo hands out the same object

struct PickleValue {
  // global: `text` is "module.name". object: built by a PickleExtensions, `handle` is its own.
  // reduce (callable items[0] applied to the tuple items[1], then `entries` set on the result)
  // and persistent_id (items[0]) are only written, never read back as such.
  enum class Kind { none, boolean, integer, floating, string, bytes, list, tuple, dict, global, object, reduce, persistent_id };
  Kind kind = Kind::none;
  int64_t handle = -1;
  bool boolean = false;
  int64_t integer = 0;
  double floating = 0;
  std::string text;                                   // string (UTF-8) or bytes
  std::vector<PickleRef> items;                       // list, tuple
  std::vector<std::pair<PickleRef, PickleRef>> entries;  // dict, in insertion order
  int depth = 0;                                      // containers nested below this one

  // The value of a dict's string key, or nullptr.
  PickleRef get(const std::string& key) const;
};

// What a pickle may build beyond plain data. Each hook throws PickleError to refuse.
class PickleExtensions {
 public:
  virtual ~PickleExtensions() = default;
  virtual bool allows_global(const std::string& qualified_name) const = 0;
  // REDUCE: `callable` is an allowed global, `args` a tuple.
  virtual PickleRef call(const PickleValue& callable, const PickleValue& args) = 0;
  // BUILD: sets `state` on a value that `call` made.
  virtual void build(PickleValue& target, const PickleValue& state) = 0;
  // BINPERSID: the value an out-of-band reference names.
  virtual PickleRef persistent_load(const PickleValue& pid) = 0;
};

// Parses `data`; errors name `origin`, the byte offset and what was found.
PickleRef parse_pickle(const std::string& data, const std::string& origin, PickleExtensions* extensions = nullptr);

// Pickles plain data (protocol 2, which every Python 3 reads).
std::string write_pickle(const PickleValue& value);

PickleRef pickle_int(int64_t value);
PickleRef pickle_string(std::string value);
PickleRef pickle_dict(std::vector<std::pair<PickleRef, PickleRef>> entries);
PickleRef pickle_float(double value);
PickleRef pickle_bool(bool value);
PickleRef pickle_none();
PickleRef pickle_tuple(std::vector<PickleRef> items);
PickleRef pickle_list(std::vector<PickleRef> items);
PickleRef pickle_global(std::string qualified_name);  // "module.name"
PickleRef pickle_reduce(PickleRef callable, PickleRef args);
PickleRef pickle_persistent_id(PickleRef pid);
// collections.OrderedDict with `entries`, as torch.save writes a state_dict.
PickleRef pickle_ordered_dict(std::vector<std::pair<PickleRef, PickleRef>> entries);

}  // namespace nanogpt
