#!/usr/bin/env python3
"""The layout rules of docs/architecture.md, checked: every library source sits in a component
folder, includes only its own component and the components that its row of the table in
docs/architecture.md allows (so no include runs back up), and uses no other component's
internal header; no source file is over 400 lines and no function over 80 (lizard).

  .venv/bin/python tools/check_layout.py [--root DIR]

Prints each component's files and lines, then every broken rule; exits 1 if there is one, and 77
(skipped) where lizard is missing and every other rule holds.
CTest runs it as `layout`.
"""
import argparse
import os
import re
import sys

MAX_FILE_LINES = 400
MAX_FUNCTION_LINES = 80
SKIPPED = 77  # CTest's SKIP_RETURN_CODE for this test
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)
# a row of the table: | `component` | what it holds | `a`, `b` |
ROW = re.compile(r"^\|\s*`([a-z_]+)`\s*\|[^|]*\|([^|]*)\|", re.M)
SOURCE_SUFFIXES = (".cpp", ".h", ".py", ".sh")
# generated tables, not code a person writes
EXEMPT = {"src/tokenizer/unicode_classes.inc"}


def allowed_dependencies(architecture_md):
    """docs/architecture.md's table -> {component: set of components it may include}."""
    table = {}
    for name, deps in ROW.findall(open(architecture_md, encoding="utf-8").read()):
        table[name] = {d.strip(" `") for d in deps.split(",") if d.strip(" `—-")}
    if not table:
        sys.exit(f"{architecture_md}: no table of components found")
    return table


def component_of(path):
    """src/<c>/x.cpp, include/nanogpt/<c>/x.h -> c; None for anything else."""
    parts = path.split("/")
    if parts[0] == "src" and len(parts) == 3:
        return parts[1]
    if parts[:2] == ["include", "nanogpt"] and len(parts) == 4:
        return parts[2]
    return None


def included_component(include, internal_headers):
    """'nanogpt/<c>/x.h' -> (c, public); '<c>/x.h' naming an internal header -> (c, internal)."""
    parts = include.split("/")
    if parts[0] == "nanogpt" and len(parts) == 3:
        return parts[1], False
    if include in internal_headers:
        return parts[0], True
    return None, False


def library_files(root):
    files = []
    for top in ("src", "include"):
        for folder, _, names in os.walk(os.path.join(root, top)):
            files += [os.path.relpath(os.path.join(folder, n), root) for n in names]
    return sorted(files)


def layout_errors(root, table):
    errors = []
    files = library_files(root)
    internal = {f[len("src/"):] for f in files if f.startswith("src/") and f.endswith((".h", ".inc"))}
    for path in files:
        component = component_of(path)
        if component is None:
            errors.append(f"{path}: not in a component folder (src/<component>/ or include/nanogpt/<component>/)")
            continue
        if component not in table:
            errors.append(f"{path}: component '{component}' is not in docs/architecture.md's table")
            continue
        text = open(os.path.join(root, path), encoding="utf-8").read()
        for include in INCLUDE.findall(text):
            target, is_internal = included_component(include, internal)
            if target is None or target == component:
                continue
            if is_internal:
                errors.append(f"{path}: includes {include}, an internal header of '{target}'")
            elif target not in table[component]:
                errors.append(f"{path}: includes {include}, but '{component}' may include only "
                              f"{', '.join(sorted(table[component])) or 'nothing'}")
    return errors


def length_errors(root):
    errors = []
    checked = []
    for top in ("src", "include", "tests", "tools"):
        for folder, _, names in os.walk(os.path.join(root, top)):
            for name in names:
                path = os.path.relpath(os.path.join(folder, name), root)
                if not name.endswith(SOURCE_SUFFIXES) or path in EXEMPT or "/fixtures/" in path:
                    continue
                checked.append(path)
                lines = open(os.path.join(root, path), encoding="utf-8", errors="replace").read().count("\n")
                if lines > MAX_FILE_LINES:
                    errors.append(f"{path}: {lines} lines (at most {MAX_FILE_LINES})")
    try:
        import lizard
    except ImportError:
        return errors, False
    for path in checked:
        if path.endswith(".sh"):
            continue
        for function in lizard.analyze_file(os.path.join(root, path)).function_list:
            if function.length > MAX_FUNCTION_LINES:
                errors.append(f"{path}:{function.start_line}: {function.long_name.split('(')[0]} is "
                              f"{function.length} lines (at most {MAX_FUNCTION_LINES})")
    return errors, True


def summary(root, table):
    counts = {}
    for path in library_files(root):
        component = component_of(path) or "(none)"
        lines = open(os.path.join(root, path), encoding="utf-8").read().count("\n")
        files, total = counts.get(component, (0, 0))
        counts[component] = (files + 1, total + lines)
    print("| component | files | lines | may include |")
    print("| --- | ---: | ---: | --- |")
    for component in list(table) + sorted(set(counts) - set(table)):
        files, lines = counts.get(component, (0, 0))
        print(f"| {component} | {files} | {lines} | {', '.join(sorted(table.get(component, ()))) or '—'} |")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", default=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    args = parser.parse_args()
    table = allowed_dependencies(os.path.join(args.root, "docs", "architecture.md"))
    summary(args.root, table)
    lengths, functions_checked = length_errors(args.root)
    errors = layout_errors(args.root, table) + lengths
    for error in errors:
        print("error:", error)
    if errors:
        print(f"{len(errors)} broken rule(s)")
        return 1
    if not functions_checked:
        # a Python without PyPI's packages (Debian's, in tools/test_libtorch2.sh's chroot)
        print("skipped: function lengths not checked, lizard is not installed (tools/setup.sh --tests "
              "installs requirements.txt); every other rule holds")
        return SKIPPED
    print("layout: every rule holds")
    return 0


if __name__ == "__main__":
    sys.exit(main())
