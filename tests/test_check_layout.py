#!/usr/bin/env python3
"""tools/check_layout.py on small trees: a tree that keeps the rules passes, and each kind of
broken rule (an include back up the table, another component's internal header, a file
outside the component folders, a long file, a long function) is reported and fails."""
import os
import subprocess
import sys
import tempfile
import unittest

try:
    import lizard  # noqa: F401  (function lengths)
    HAS_LIZARD = True
except ImportError:
    HAS_LIZARD = False

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CHECK = os.path.join(ROOT, "tools", "check_layout.py")
TABLE = """| component | what it holds | may include |
| --- | --- | --- |
| `base` | files | — |
| `model` | modules | `base` |
"""


def write(root, path, text):
    os.makedirs(os.path.dirname(os.path.join(root, path)), exist_ok=True)
    with open(os.path.join(root, path), "w", encoding="utf-8") as f:
        f.write(text)


class CheckLayout(unittest.TestCase):
    def tree(self, files):
        root = tempfile.mkdtemp()
        write(root, "docs/architecture.md", TABLE)
        write(root, "include/nanogpt/base/files.h", "#pragma once\n")
        write(root, "src/base/files.cpp", '#include "nanogpt/base/files.h"\n')
        write(root, "src/base/detail.h", "#pragma once\n")
        write(root, "src/model/model.cpp", '#include "nanogpt/base/files.h"\nint f() { return 1; }\n')
        for path, text in files.items():
            write(root, path, text)
        return subprocess.run([sys.executable, CHECK, "--root", root], capture_output=True, text=True)

    def test_a_tree_that_keeps_the_rules_passes(self):
        result = self.tree({})
        self.assertEqual(result.returncode, 0 if HAS_LIZARD else 77, result.stdout)
        self.assertIn("| model | 1 | 2 | base |", result.stdout)
        self.assertIn("layout: every rule holds" if HAS_LIZARD else "every other rule holds", result.stdout)

    def test_an_include_back_up_the_table_fails(self):
        result = self.tree({"include/nanogpt/model/model.h": "#pragma once\n",
                            "src/base/files.cpp": '#include "nanogpt/model/model.h"\n'})
        self.assertEqual(result.returncode, 1)
        self.assertIn("src/base/files.cpp: includes nanogpt/model/model.h, but 'base' may include only nothing",
                      result.stdout)

    def test_another_components_internal_header_fails(self):
        result = self.tree({"src/model/model.cpp": '#include "base/detail.h"\n'})
        self.assertEqual(result.returncode, 1)
        self.assertIn("includes base/detail.h, an internal header of 'base'", result.stdout)

    def test_a_file_outside_the_component_folders_fails(self):
        result = self.tree({"src/loose.cpp": "int g() { return 2; }\n"})
        self.assertEqual(result.returncode, 1)
        self.assertIn("src/loose.cpp: not in a component folder", result.stdout)

    def test_a_long_file_fails(self):
        result = self.tree({"tools/long.py": "x = 1\n" * 401})
        self.assertEqual(result.returncode, 1)
        self.assertIn("tools/long.py: 401 lines (at most 400)", result.stdout)

    @unittest.skipUnless(HAS_LIZARD, "lizard is not installed (tools/setup.sh --tests installs requirements.txt)")
    def test_a_long_function_fails(self):
        long_function = "int h() {\n" + "  int x = 0;\n" * 85 + "  return 0;\n}\n"
        result = self.tree({"src/model/long.cpp": long_function})
        self.assertEqual(result.returncode, 1)
        self.assertRegex(result.stdout, r"src/model/long.cpp:1: h is 88 lines \(at most 80\)")


if __name__ == "__main__":
    unittest.main()
