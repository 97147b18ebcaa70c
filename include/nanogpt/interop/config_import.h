#pragma once
// nanoGPT's Python config files (config/*.py) to this port's YAML: assignments of literals
// (numbers, strings, True/False) and arithmetic on them (`5 * 8`, `'a' + 'b'`), comments
// kept; `import` lines are dropped. Anything else is a ConfigError naming the line.
#include <string>

namespace nanogpt {

// The YAML twin of the Python config text; `origin` names the file in errors. Every key
// must be a config key and its value of the key's type.
std::string import_python_config(const std::string& python_text, const std::string& origin);

}  // namespace nanogpt
