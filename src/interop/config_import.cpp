#include "nanogpt/interop/config_import.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <map>
#include <sstream>
#include <variant>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "nanogpt/base/config.h"

namespace nanogpt {

namespace {

using Value = std::variant<int64_t, double, bool, std::string>;

struct Token {
  enum Kind { number, string, name, op, end } kind;
  std::string text;
};

// Splits one statement's right-hand side into tokens.
std::vector<Token> tokenize(const std::string& s, const std::string& where) {
  std::vector<Token> tokens;
  for (size_t i = 0; i < s.size();) {
    const char c = s[i];
    if (std::isspace(static_cast<unsigned char>(c))) {
      ++i;
    } else if (std::isdigit(static_cast<unsigned char>(c)) || (c == '.' && i + 1 < s.size() && std::isdigit(static_cast<unsigned char>(s[i + 1])))) {
      size_t j = i;
      while (j < s.size() && (std::isalnum(static_cast<unsigned char>(s[j])) || s[j] == '.' || s[j] == '_' ||
                              ((s[j] == '+' || s[j] == '-') && (s[j - 1] == 'e' || s[j - 1] == 'E')))) {
        ++j;
      }
      tokens.push_back({Token::number, s.substr(i, j - i)});
      i = j;
    } else if (c == '\'' || c == '"') {
      std::string text;
      size_t j = i + 1;
      for (; j < s.size() && s[j] != c; ++j) {
        if (s[j] == '\\' && j + 1 < s.size()) {
          const char e = s[++j];
          text += e == 'n' ? '\n' : e == 't' ? '\t' : e;
        } else {
          text += s[j];
        }
      }
      if (j >= s.size()) throw ConfigError(fmt::format("{}: unterminated string", where));
      tokens.push_back({Token::string, text});
      i = j + 1;
    } else if (std::isalpha(static_cast<unsigned char>(c)) || c == '_') {
      size_t j = i;
      while (j < s.size() && (std::isalnum(static_cast<unsigned char>(s[j])) || s[j] == '_' || s[j] == '.')) ++j;
      tokens.push_back({Token::name, s.substr(i, j - i)});
      i = j;
    } else if (s.compare(i, 2, "//") == 0 || s.compare(i, 2, "**") == 0) {
      tokens.push_back({Token::op, s.substr(i, 2)});
      i += 2;
    } else if (std::string("+-*/()").find(c) != std::string::npos) {
      tokens.push_back({Token::op, std::string(1, c)});
      ++i;
    } else {
      throw ConfigError(fmt::format("{}: unexpected character '{}'", where, c));
    }
  }
  tokens.push_back({Token::end, ""});
  return tokens;
}

// Recursive descent over + - * / // and parentheses, on literal operands only.
class Evaluator {
 public:
  Evaluator(std::vector<Token> tokens, std::string where) : tokens_(std::move(tokens)), where_(std::move(where)) {}

  Value evaluate() {
    Value v = sum();
    if (peek().kind != Token::end) fail(fmt::format("unexpected '{}'", peek().text));
    return v;
  }

 private:
  const Token& peek() const { return tokens_[pos_]; }
  bool accept(const std::string& op) {
    if (peek().kind == Token::op && peek().text == op) return ++pos_, true;
    return false;
  }
  [[noreturn]] void fail(const std::string& why) const {
    throw ConfigError(fmt::format("{}: {}; only literals (numbers, strings, True/False) and arithmetic on them "
                                  "can be imported",
                                  where_, why));
  }

  Value sum() {
    Value v = product();
    while (true) {
      if (accept("+")) {
        v = combine(v, product(), '+');
      } else if (accept("-")) {
        v = combine(v, product(), '-');
      } else {
        return v;
      }
    }
  }

  Value product() {
    Value v = unary();
    while (true) {
      if (accept("*")) {
        v = combine(v, unary(), '*');
      } else if (accept("//")) {
        v = combine(v, unary(), 'f');
      } else if (accept("/")) {
        v = combine(v, unary(), '/');
      } else {
        return v;
      }
    }
  }

  Value unary() {
    if (accept("-")) return combine(int64_t{0}, unary(), '-');
    if (accept("+")) return unary();
    return atom();
  }

  Value atom() {
    const Token token = peek();
    ++pos_;
    if (token.kind == Token::op && token.text == "(") {
      Value v = sum();
      if (!accept(")")) fail("missing ')'");
      return v;
    }
    if (token.kind == Token::string) return token.text;
    if (token.kind == Token::number) {
      std::string digits;
      for (char ch : token.text) if (ch != '_') digits += ch;
      const bool is_float = digits.find_first_of(".eE") != std::string::npos;
      try {
        size_t used = 0;
        Value v = is_float ? Value(std::stod(digits, &used)) : Value(static_cast<int64_t>(std::stoll(digits, &used)));
        if (used == digits.size()) return v;
      } catch (const std::exception&) {
      }
      fail(fmt::format("'{}' is not a number", token.text));
    }
    if (token.kind == Token::name && token.text == "True") return true;
    if (token.kind == Token::name && token.text == "False") return false;
    if (token.kind == Token::name) fail(fmt::format("'{}' is not a literal", token.text));
    fail(token.kind == Token::end ? "missing value" : fmt::format("unexpected '{}'", token.text));
  }

  Value combine(const Value& a, const Value& b, char op) const {
    if (std::holds_alternative<std::string>(a) || std::holds_alternative<std::string>(b)) {
      if (op == '+' && std::holds_alternative<std::string>(a) && std::holds_alternative<std::string>(b)) {
        return std::get<std::string>(a) + std::get<std::string>(b);
      }
      fail("only + joins strings");
    }
    if (std::holds_alternative<bool>(a) || std::holds_alternative<bool>(b)) fail("no arithmetic on True/False");
    if (std::holds_alternative<int64_t>(a) && std::holds_alternative<int64_t>(b) && op != '/') {
      const int64_t x = std::get<int64_t>(a), y = std::get<int64_t>(b);
      if (op == '+') return x + y;
      if (op == '-') return x - y;
      if (op == '*') return x * y;
      if (y == 0) fail("division by zero");
      return static_cast<int64_t>(std::floor(static_cast<double>(x) / static_cast<double>(y)));  // Python's //
    }
    auto as_double = [](const Value& v) {
      return std::holds_alternative<int64_t>(v) ? static_cast<double>(std::get<int64_t>(v)) : std::get<double>(v);
    };
    const double x = as_double(a), y = as_double(b);
    if (op == '+') return x + y;
    if (op == '-') return x - y;
    if (op == '*') return x * y;
    if (y == 0) fail("division by zero");
    return op == 'f' ? std::floor(x / y) : x / y;
  }

  std::vector<Token> tokens_;
  std::string where_;
  size_t pos_ = 0;
};

// The position of a '#' that starts a comment (outside quotes), or npos.
size_t comment_start(const std::string& line) {
  char quote = 0;
  for (size_t i = 0; i < line.size(); ++i) {
    if (quote != 0) {
      if (line[i] == '\\') ++i;
      else if (line[i] == quote) quote = 0;
    } else if (line[i] == '\'' || line[i] == '"') {
      quote = line[i];
    } else if (line[i] == '#') {
      return i;
    }
  }
  return std::string::npos;
}

std::string trim(const std::string& s) {
  const size_t a = s.find_first_not_of(" \t\r");
  if (a == std::string::npos) return "";
  return s.substr(a, s.find_last_not_of(" \t\r") - a + 1);
}

// The value as this port reads it on the command line and in YAML.
std::string scalar_text(const Value& v) {
  if (std::holds_alternative<int64_t>(v)) return std::to_string(std::get<int64_t>(v));
  if (std::holds_alternative<double>(v)) {
    std::string text = fmt::format("{}", std::get<double>(v));
    if (text.find_first_of(".e") == std::string::npos) text += ".0";
    return text;
  }
  if (std::holds_alternative<bool>(v)) return std::get<bool>(v) ? "true" : "false";
  return std::get<std::string>(v);
}

}  // namespace

std::string import_python_config(const std::string& python_text, const std::string& origin) {
  std::vector<std::string> yaml_lines;
  std::map<std::string, size_t> line_of_key;  // a key assigned again: Python keeps the last value
  TrainConfig checked = default_config();
  std::istringstream lines(python_text);
  int line_number = 0;
  for (std::string raw; std::getline(lines, raw);) {
    ++line_number;
    const std::string where = fmt::format("{}:{}", origin, line_number);
    const size_t hash = comment_start(raw);
    const std::string code = trim(raw.substr(0, hash));
    const std::string comment = hash == std::string::npos ? "" : trim(raw.substr(hash));
    if (code.empty()) {
      yaml_lines.push_back(comment);
      continue;
    }
    if (code.rfind("import ", 0) == 0 || code.rfind("from ", 0) == 0) {
      yaml_lines.push_back("# (" + code + ": not needed in YAML)");
      continue;
    }
    const size_t eq = code.find('=');
    const std::string key = eq == std::string::npos ? "" : trim(code.substr(0, eq));
    const bool is_name = !key.empty() && std::all_of(key.begin(), key.end(), [](char ch) {
      return std::isalnum(static_cast<unsigned char>(ch)) || ch == '_';
    });
    if (!is_name || code.compare(eq, 2, "==") == 0) {
      throw ConfigError(fmt::format("{}: '{}' is not an assignment `name = value`", where, code));
    }
    const std::string expression = code.substr(eq + 1);
    const Value value = Evaluator(tokenize(expression, where), where).evaluate();
    // type-checks the value against the key, and names the closest key when unknown
    set_config_value(checked, key, scalar_text(value), where);
    const std::string text = std::holds_alternative<std::string>(value) ? nlohmann::json(std::get<std::string>(value)).dump()
                                                                        : scalar_text(value);
    if (const auto earlier = line_of_key.find(key); earlier != line_of_key.end()) {
      yaml_lines[earlier->second] = fmt::format("# {}  (assigned again at {})", yaml_lines[earlier->second], where);
    }
    line_of_key[key] = yaml_lines.size();
    yaml_lines.push_back(key + ": " + text + (comment.empty() ? "" : "  " + comment));
  }
  std::string yaml;
  for (const auto& line : yaml_lines) yaml += line + "\n";
  return yaml;
}

}  // namespace nanogpt
