// Writes pickles in protocol 2 (what torch.save uses and every Python 3 reads): plain data,
// plus the globals, calls and persistent ids that torch_file.cpp needs for tensors.
#include <cstdint>
#include <cstring>

#include <fmt/format.h>

#include "nanogpt/formats/pickle.h"

namespace nanogpt {

namespace {

void append_le(std::string& out, uint64_t value, size_t n) {
  for (size_t k = 0; k < n; ++k) out += static_cast<char>((value >> (8 * k)) & 0xff);
}

void write_value(std::string& out, const PickleValue& v);

// SETITEMS into the dict on top of the stack.
void write_items(std::string& out, const std::vector<std::pair<PickleRef, PickleRef>>& entries) {
  if (entries.empty()) return;
  out += '(';
  for (const auto& [key, value] : entries) write_value(out, *key), write_value(out, *value);
  out += 'u';
}

void write_value(std::string& out, const PickleValue& v) {
  using Kind = PickleValue::Kind;
  switch (v.kind) {
    case Kind::none: out += 'N'; break;
    case Kind::boolean: out += v.boolean ? '\x88' : '\x89'; break;
    case Kind::integer:
      if (v.integer >= 0 && v.integer < 256) {
        out += 'K', append_le(out, static_cast<uint64_t>(v.integer), 1);
      } else if (v.integer >= INT32_MIN && v.integer <= INT32_MAX) {
        out += 'J', append_le(out, static_cast<uint64_t>(v.integer), 4);
      } else {
        out += '\x8a', out += '\x08', append_le(out, static_cast<uint64_t>(v.integer), 8);
      }
      break;
    case Kind::floating: {
      uint64_t bits;
      std::memcpy(&bits, &v.floating, 8);
      out += 'G';
      for (int k = 7; k >= 0; --k) out += static_cast<char>((bits >> (8 * k)) & 0xff);
      break;
    }
    case Kind::string:
    case Kind::bytes:
      out += v.kind == Kind::string ? 'X' : 'B';
      append_le(out, v.text.size(), 4);
      out += v.text;
      break;
    // Lists and dicts as CPython's protocol 2 writes them (EMPTY_LIST + APPENDS, EMPTY_DICT +
    // SETITEMS): torch.load's weights_only unpickler, the default from PyTorch 2.6 on, has no
    // LIST or DICT opcode.
    case Kind::tuple:
      out += '(';
      for (const auto& item : v.items) write_value(out, *item);
      out += 't';
      break;
    case Kind::list:
      out += ']';
      if (!v.items.empty()) {
        out += '(';
        for (const auto& item : v.items) write_value(out, *item);
        out += 'e';  // APPENDS
      }
      break;
    case Kind::dict:
      out += '}';
      write_items(out, v.entries);
      break;
    case Kind::global: {
      const size_t dot = v.text.rfind('.');
      out += 'c' + v.text.substr(0, dot) + '\n' + v.text.substr(dot + 1) + '\n';
      break;
    }
    case Kind::reduce:
      write_value(out, *v.items.at(0));
      write_value(out, *v.items.at(1));
      out += 'R';
      write_items(out, v.entries);
      break;
    case Kind::persistent_id:
      write_value(out, *v.items.at(0));
      out += 'Q';
      break;
    case Kind::object:
      throw PickleError("an object built while reading a pickle cannot be written back");
  }
}

PickleRef make(PickleValue::Kind kind) {
  auto v = std::make_shared<PickleValue>();
  v->kind = kind;
  return v;
}

}  // namespace

std::string write_pickle(const PickleValue& value) {
  std::string out("\x80\x02", 2);  // PROTO 2
  write_value(out, value);
  return out + '.';
}

PickleRef pickle_int(int64_t value) {
  auto v = make(PickleValue::Kind::integer);
  v->integer = value;
  return v;
}

PickleRef pickle_string(std::string value) {
  auto v = make(PickleValue::Kind::string);
  v->text = std::move(value);
  return v;
}

PickleRef pickle_dict(std::vector<std::pair<PickleRef, PickleRef>> entries) {
  auto v = make(PickleValue::Kind::dict);
  v->entries = std::move(entries);
  return v;
}

PickleRef pickle_float(double value) {
  auto v = make(PickleValue::Kind::floating);
  v->floating = value;
  return v;
}

PickleRef pickle_bool(bool value) {
  auto v = make(PickleValue::Kind::boolean);
  v->boolean = value;
  return v;
}

PickleRef pickle_none() { return make(PickleValue::Kind::none); }

PickleRef pickle_tuple(std::vector<PickleRef> items) {
  auto v = make(PickleValue::Kind::tuple);
  v->items = std::move(items);
  return v;
}

PickleRef pickle_list(std::vector<PickleRef> items) {
  auto v = make(PickleValue::Kind::list);
  v->items = std::move(items);
  return v;
}

PickleRef pickle_global(std::string qualified_name) {
  if (qualified_name.find('.') == std::string::npos) {
    throw PickleError(fmt::format("global '{}' needs a module: \"module.name\"", qualified_name));
  }
  auto v = make(PickleValue::Kind::global);
  v->text = std::move(qualified_name);
  return v;
}

PickleRef pickle_reduce(PickleRef callable, PickleRef args) {
  auto v = make(PickleValue::Kind::reduce);
  v->items = {std::move(callable), std::move(args)};
  return v;
}

PickleRef pickle_persistent_id(PickleRef pid) {
  auto v = make(PickleValue::Kind::persistent_id);
  v->items = {std::move(pid)};
  return v;
}

PickleRef pickle_ordered_dict(std::vector<std::pair<PickleRef, PickleRef>> entries) {
  auto v = pickle_reduce(pickle_global("collections.OrderedDict"), pickle_tuple({}));
  v->entries = std::move(entries);
  return v;
}

}  // namespace nanogpt
