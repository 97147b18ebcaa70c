#include "nanogpt/formats/pickle.h"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <unordered_map>
#include <unordered_set>

#include <fmt/format.h>

namespace nanogpt {

PickleRef PickleValue::get(const std::string& key) const {
  for (const auto& [k, v] : entries) {
    if (k->kind == Kind::string && k->text == key) return v;
  }
  return nullptr;
}

namespace {

class PickleMachine {
 public:
  PickleMachine(const std::string& data, std::string origin, PickleExtensions* extensions)
      : data_(data), origin_(std::move(origin)), extensions_(extensions) {}
  ~PickleMachine() {
    // after an error the partial structures may hold cycles or deep chains: take them apart
    if (!validated_) {
      for (const PickleRef& v : containers_) v->items.clear(), v->entries.clear();
    }
  }

  // One opcode per turn: STOP returns the validated root; every other opcode goes to the
  // handler of its family, which returns false for an opcode outside its family.
  PickleRef run() {
    while (true) {
      const size_t at = pos_;
      const auto opcode = static_cast<unsigned char>(byte());
      if (opcode == '.') return stop(at);
      const bool handled = frame_or_mark(opcode) || push_constant(at, opcode) || push_text(opcode) ||
                           make_container(at, opcode) || fill_container(at, opcode) || use_memo(at, opcode) ||
                           call_extension(at, opcode);
      if (!handled) unsupported(at, opcode);
    }
  }

 private:
  PickleRef stop(size_t at) {  // STOP
    PickleRef root = pop(at);
    validate(at, root);
    return root;
  }
  bool frame_or_mark(unsigned char opcode) {
    switch (opcode) {
      case 0x80: byte(); return true;                             // PROTO
      case 0x95: take(8); return true;                            // FRAME (length only)
      case '(': marks_.push_back(stack_.size()); return true;     // MARK
      default: return false;
    }
  }
  bool push_constant(size_t at, unsigned char opcode) {
    switch (opcode) {
      case 'N': push(make(PickleValue::Kind::none)); return true;
      case 0x88: push(boolean(true)); return true;    // NEWTRUE
      case 0x89: push(boolean(false)); return true;   // NEWFALSE
      case 'K': push(integer(static_cast<unsigned char>(byte()))); return true;  // BININT1
      case 'M': push(integer(little_endian(2, false))); return true;            // BININT2
      case 'J': push(integer(little_endian(4, true))); return true;             // BININT
      case 0x8a: {                                                              // LONG1
        const auto n = static_cast<unsigned char>(byte());
        if (n > 8) fail(at, fmt::format("integer of {} bytes is too large", n));
        push(integer(n == 0 ? 0 : little_endian(n, true)));
        return true;
      }
      case 'G': push(binfloat()); return true;        // BINFLOAT
      default: return false;
    }
  }
  PickleRef binfloat() {  // big-endian
    const std::string raw = take(8);
    uint64_t bits = 0;
    for (char c : raw) bits = (bits << 8) | static_cast<unsigned char>(c);
    double value;
    std::memcpy(&value, &bits, 8);
    auto v = make(PickleValue::Kind::floating);
    v->floating = value;
    return v;
  }
  bool push_text(unsigned char opcode) {
    switch (opcode) {
      case 0x8c: push(text(PickleValue::Kind::string, static_cast<unsigned char>(byte()))); return true;  // SHORT_BINUNICODE
      case 'X': push(text(PickleValue::Kind::string, little_endian(4, false))); return true;             // BINUNICODE
      case 0x8d: push(text(PickleValue::Kind::string, little_endian(8, false))); return true;            // BINUNICODE8
      case 'C': push(text(PickleValue::Kind::bytes, static_cast<unsigned char>(byte()))); return true;   // SHORT_BINBYTES
      case 'B': push(text(PickleValue::Kind::bytes, little_endian(4, false))); return true;              // BINBYTES
      default: return false;
    }
  }
  bool make_container(size_t at, unsigned char opcode) {
    switch (opcode) {
      case '}': push(make(PickleValue::Kind::dict)); return true;   // EMPTY_DICT
      case ']': push(make(PickleValue::Kind::list)); return true;   // EMPTY_LIST
      case ')': push(make(PickleValue::Kind::tuple)); return true;  // EMPTY_TUPLE
      case 'd': case 'l': case 't': {                               // DICT, LIST, TUPLE from the mark
        auto items = pop_mark(at);
        auto v = make(opcode == 'd' ? PickleValue::Kind::dict : opcode == 'l' ? PickleValue::Kind::list : PickleValue::Kind::tuple);
        if (opcode == 'd') {
          set_items(at, *v, items);
        } else {
          for (auto& item : items) add_item(at, *v, item);
        }
        push(v);
        return true;
      }
      case 0x85: case 0x86: case 0x87: {  // TUPLE1..3
        auto v = make(PickleValue::Kind::tuple);
        std::vector<PickleRef> items(opcode - 0x84);
        for (size_t k = items.size(); k-- > 0;) items[k] = pop(at);
        for (auto& item : items) add_item(at, *v, item);
        push(v);
        return true;
      }
      default: return false;
    }
  }
  bool fill_container(size_t at, unsigned char opcode) {
    switch (opcode) {
      case 'a': {  // APPEND
        auto item = pop(at);
        add_item(at, container(at, PickleValue::Kind::list), item);
        return true;
      }
      case 'e': {  // APPENDS
        auto items = pop_mark(at);
        auto& list = container(at, PickleValue::Kind::list);
        for (auto& item : items) add_item(at, list, item);
        return true;
      }
      case 's': {  // SETITEM
        auto value = pop(at);
        auto key = pop(at);
        add_entry(at, container(at, PickleValue::Kind::dict), key, value);
        return true;
      }
      case 'u': {  // SETITEMS
        auto items = pop_mark(at);
        set_items(at, container(at, PickleValue::Kind::dict), items);
        return true;
      }
      default: return false;
    }
  }
  bool use_memo(size_t at, unsigned char opcode) {
    switch (opcode) {
      case 0x94: memo_[memo_.size()] = top(at); return true;                          // MEMOIZE
      case 'q': memo_[static_cast<unsigned char>(byte())] = top(at); return true;     // BINPUT
      case 'r': memo_[little_endian(4, false)] = top(at); return true;                // LONG_BINPUT
      case 'h': push(memo(at, static_cast<unsigned char>(byte()))); return true;      // BINGET
      case 'j': push(memo(at, little_endian(4, false))); return true;                 // LONG_BINGET
      default: return false;
    }
  }
  // The opcodes that reach the PickleExtensions: globals, REDUCE, BUILD and persistent ids.
  bool call_extension(size_t at, unsigned char opcode) {
    switch (opcode) {
      case 'c': {  // GLOBAL: "module\nname\n"
        std::string module = line();
        push(global(at, module + "." + line()));
        return true;
      }
      case 0x93: {  // STACK_GLOBAL
        PickleRef name = pop(at), module = pop(at);
        if (name->kind != PickleValue::Kind::string || module->kind != PickleValue::Kind::string) {
          fail(at, "STACK_GLOBAL needs two strings");
        }
        push(global(at, module->text + "." + name->text));
        return true;
      }
      case 'R': {  // REDUCE: call an allowed global
        PickleRef args = pop(at), callable = pop(at);
        if (callable->kind != PickleValue::Kind::global || args->kind != PickleValue::Kind::tuple) {
          fail(at, "REDUCE needs a global and a tuple");
        }
        push(extend(at, opcode).call(*callable, *args));
        return true;
      }
      case 'b': {  // BUILD
        PickleRef state = pop(at);
        extend(at, opcode).build(*top(at), *state);
        return true;
      }
      case 'Q': {  // BINPERSID
        PickleRef pid = pop(at);
        push(extend(at, opcode).persistent_load(*pid));
        return true;
      }
      default: return false;
    }
  }
  [[noreturn]] void unsupported(size_t at, unsigned char opcode) const {
    switch (opcode) {
      case 0x81: case 0x92: case 'i': case 'o': case 'P':
        fail(at, refusal(opcode));
      default:
        fail(at, fmt::format("unsupported pickle opcode 0x{:02x}", opcode));
    }
  }
  [[noreturn]] void fail(size_t at, const std::string& why) const {
    throw PickleError(fmt::format("{}: bad pickle at byte {}: {}", origin_, at, why));
  }
  static std::string refusal(unsigned char opcode) {
    return fmt::format("opcode 0x{:02x} would build an object or call a global; this reader only accepts plain "
                       "data (dicts, lists, strings, numbers)",
                       opcode);
  }
  PickleExtensions& extend(size_t at, unsigned char opcode) const {
    if (extensions_ == nullptr) fail(at, refusal(opcode));
    return *extensions_;
  }
  PickleRef global(size_t at, const std::string& qualified_name) {
    if (extensions_ == nullptr) fail(at, refusal(data_[at]));
    if (!extensions_->allows_global(qualified_name)) {
      fail(at, fmt::format("global '{}' is not on the allow-list; it is refused, never executed", qualified_name));
    }
    auto v = make(PickleValue::Kind::global);
    v->text = qualified_name;
    return v;
  }
  std::string line() {
    const size_t end = data_.find('\n', pos_);
    if (end == std::string::npos || end - pos_ > 256) fail(pos_, "unterminated GLOBAL name");
    std::string out = data_.substr(pos_, end - pos_);
    pos_ = end + 1;
    return out;
  }
  char byte() {
    if (pos_ >= data_.size()) fail(pos_, "unexpected end of data (truncated file?)");
    return data_[pos_++];
  }
  std::string take(uint64_t n) {
    if (n > data_.size() - pos_) fail(pos_, "unexpected end of data (truncated file?)");
    std::string out = data_.substr(pos_, n);
    pos_ += n;
    return out;
  }
  int64_t little_endian(size_t n, bool is_signed) {
    const std::string raw = take(n);
    uint64_t value = 0;
    for (size_t k = 0; k < n; ++k) value |= static_cast<uint64_t>(static_cast<unsigned char>(raw[k])) << (8 * k);
    if (is_signed && n < 8 && (value >> (8 * n - 1)) & 1) value |= ~uint64_t{0} << (8 * n);
    return static_cast<int64_t>(value);
  }
  static PickleRef make(PickleValue::Kind kind) {
    auto v = std::make_shared<PickleValue>();
    v->kind = kind;
    return v;
  }
  static PickleRef boolean(bool b) {
    auto v = make(PickleValue::Kind::boolean);
    v->boolean = b;
    return v;
  }
  static PickleRef integer(int64_t i) {
    auto v = make(PickleValue::Kind::integer);
    v->integer = i;
    return v;
  }
  PickleRef text(PickleValue::Kind kind, int64_t length) {
    if (length < 0) fail(pos_, "negative length");
    auto v = make(kind);
    v->text = take(static_cast<uint64_t>(length));
    return v;
  }
  void push(PickleRef v) {
    if (is_container(*v) && registered_.insert(v.get()).second) containers_.push_back(v);
    stack_.push_back(std::move(v));
  }
  PickleRef top(size_t at) const {
    if (stack_.empty()) fail(at, "stack underflow");
    return stack_.back();
  }
  PickleRef pop(size_t at) {
    if (stack_.empty() || (!marks_.empty() && stack_.size() <= marks_.back())) fail(at, "stack underflow");
    PickleRef v = stack_.back();
    stack_.pop_back();
    return v;
  }
  std::vector<PickleRef> pop_mark(size_t at) {
    if (marks_.empty()) fail(at, "no MARK on the stack");
    const size_t mark = marks_.back();
    marks_.pop_back();
    std::vector<PickleRef> items(stack_.begin() + static_cast<std::ptrdiff_t>(mark), stack_.end());
    stack_.resize(mark);
    return items;
  }
  PickleValue& container(size_t at, PickleValue::Kind kind) {
    PickleRef target = top(at);
    if (target->kind != kind) fail(at, "item added to something that is not a list or dict");
    return *target;
  }
  void set_items(size_t at, PickleValue& dict, const std::vector<PickleRef>& items) {
    if (items.size() % 2 != 0) fail(at, "odd number of dict items");
    for (size_t k = 0; k < items.size(); k += 2) add_entry(at, dict, items[k], items[k + 1]);
  }
  // Additions are O(1); shape is checked once, at STOP (validate), because a per-addition
  // walk is quadratic on shared sub-structures (the fuzzer found such an input).
  void add_item(size_t, PickleValue& parent, const PickleRef& child) { parent.items.push_back(child); }
  void add_entry(size_t, PickleValue& dict, const PickleRef& key, const PickleRef& value) {
    dict.entries.emplace_back(key, value);
  }
  static bool is_container(const PickleValue& v) {
    return v.kind == PickleValue::Kind::list || v.kind == PickleValue::Kind::tuple || v.kind == PickleValue::Kind::dict;
  }
  // Shared pointers cannot own a cycle, and deep nesting would overflow the stack when the
  // tree is freed or written: the result must be acyclic and at most kMaxPickleDepth deep.
  // Sets each container's `depth` (containers nested below it) on the way.
  void validate(size_t at, const PickleRef& root) {
    enum class Mark { open, done };
    std::unordered_map<const PickleValue*, Mark> marks;
    struct Frame {
      PickleValue* value;
      size_t next_child;
    };
    auto child = [](const PickleValue& v, size_t k) -> PickleValue* {
      if (k < v.items.size()) return v.items[k].get();
      k -= v.items.size();
      if (k / 2 < v.entries.size()) return (k % 2 == 0 ? v.entries[k / 2].first : v.entries[k / 2].second).get();
      return nullptr;
    };
    std::vector<Frame> path;
    if (is_container(*root)) path.push_back({root.get(), 0}), marks[root.get()] = Mark::open;
    while (!path.empty()) {
      Frame& frame = path.back();
      PickleValue* next = child(*frame.value, frame.next_child++);
      if (next == nullptr) {  // all children done
        marks[frame.value] = Mark::done;
        const int depth = frame.value->depth;
        path.pop_back();
        if (!path.empty()) path.back().value->depth = std::max(path.back().value->depth, depth + 1);
        continue;
      }
      if (!is_container(*next)) continue;
      auto [it, fresh] = marks.try_emplace(next, Mark::open);
      if (!fresh && it->second == Mark::open) fail(at, "a structure that contains itself is not supported");
      if (!fresh) {
        frame.value->depth = std::max(frame.value->depth, next->depth + 1);
        continue;
      }
      next->depth = 0;
      if (path.size() + 1 > static_cast<size_t>(kMaxPickleDepth)) {
        fail(at, fmt::format("nesting deeper than {} levels", kMaxPickleDepth));
      }
      path.push_back({next, 0});
    }
    // containers the result does not hold (only the memo did) may form cycles: empty them
    for (const PickleRef& v : containers_) {
      if (marks.count(v.get()) == 0) v->items.clear(), v->entries.clear();
    }
    validated_ = true;
  }
  PickleRef memo(size_t at, int64_t index) const {
    auto it = memo_.find(index);
    if (it == memo_.end()) fail(at, fmt::format("memo entry {} does not exist", index));
    return it->second;
  }

  const std::string& data_;
  std::string origin_;
  PickleExtensions* extensions_;
  std::vector<PickleRef> containers_;  // every container built, kept alive to be taken apart
  std::unordered_set<const PickleValue*> registered_;
  bool validated_ = false;
  size_t pos_ = 0;
  std::vector<PickleRef> stack_;
  std::vector<size_t> marks_;
  std::unordered_map<int64_t, PickleRef> memo_;
};

}  // namespace

PickleRef parse_pickle(const std::string& data, const std::string& origin, PickleExtensions* extensions) {
  return PickleMachine(data, origin, extensions).run();
}

}  // namespace nanogpt
