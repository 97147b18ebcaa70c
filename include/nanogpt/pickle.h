#pragma once
// A reader for Python pickles (protocols 2 to 5, the opcodes `pickle.dump` emits for plain
// data: dicts, lists, tuples, strings, bytes, numbers, booleans, None). It executes nothing:
// a pickle that names a global (a class or function, as `os.system`) is refused, and so are
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
  enum class Kind { none, boolean, integer, floating, string, bytes, list, tuple, dict };
  Kind kind = Kind::none;
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

// Parses `data`; errors name `origin`, the byte offset and what was found.
PickleRef parse_pickle(const std::string& data, const std::string& origin);

// Pickles plain data (protocol 2, which every Python 3 reads).
std::string write_pickle(const PickleValue& value);

PickleRef pickle_int(int64_t value);
PickleRef pickle_string(std::string value);
PickleRef pickle_dict(std::vector<std::pair<PickleRef, PickleRef>> entries);

}  // namespace nanogpt
