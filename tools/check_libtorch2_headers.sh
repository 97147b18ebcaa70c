#!/usr/bin/env bash
# Optional, not run by CI: syntax-checks every C++ translation unit of the project (library, CLI,
# kernel bench, tests, dist worker, fuzz targets) against the headers of another LibTorch, say a
# 2.x, while the build itself uses the installed one (Debian's 1.13). Nothing is linked or run:
# `g++ -fsyntax-only`, one compiler at a time, under `nice`. See docs/libtorch2-check.md.
#
#   tools/check_libtorch2_headers.sh INCLUDE_DIR [--pch] [--cxx CXX] [--build-dir DIR] [PATTERN...]
#
# INCLUDE_DIR holds torch/, ATen/, c10/ (and gloo/, for the Gloo backend) of the LibTorch to check
# against: an unpacked LibTorch archive's include/, or usr/include of Debian's libtorch-dev and
# libgloo-dev of a release with LibTorch 2.x, unpacked with `dpkg-deb -x`. The compile commands
# (sources, definitions, the project's include paths) come from BUILD_DIR's compile_commands.json,
# configured here against the installed LibTorch if it is missing (default BUILD_DIR:
# build-libtorch2-check); its include paths of the installed LibTorch are replaced by INCLUDE_DIR's.
# A translation unit fails on a compiler error, and also when it still reaches a header of the
# installed LibTorch (one that INCLUDE_DIR lacks: gone or moved in that version).
#   --pch       put `-include torch/torch.h` first, as the precompiled header of the build does
#               (default: each file with its own includes only, the stricter check)
#   --cxx CXX   the compiler (default g++; clang++ works too)
#   PATTERN     check only the files whose path contains one of these
# Logs: BUILD_DIR/libtorch2-check/<file>.log and SUMMARY. Exit status 1 when a file failed.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
include=${1:?usage: tools/check_libtorch2_headers.sh INCLUDE_DIR [--pch] [--cxx CXX] [--build-dir DIR] [PATTERN...]}
shift
include=$(cd "$include" && pwd)
[ -f "$include/torch/csrc/api/include/torch/version.h" ] ||
  { echo "$include has no torch/csrc/api/include/torch/version.h: not a LibTorch include folder" >&2; exit 2; }
build=$root/build-libtorch2-check
args=()
while [ $# -gt 0 ]; do
  case $1 in
    --build-dir) build=$2; shift 2 ;;
    *) args+=("$1"); shift ;;
  esac
done
if [ ! -f "$build/compile_commands.json" ]; then
  mkdir -p "$build"
  cmake -S "$root" -B "$build" -DCMAKE_EXPORT_COMPILE_COMMANDS=ON -DNANOGPT_USE_PCH=OFF \
    $(command -v ninja > /dev/null && echo -G Ninja) > "$build/configure.log" 2>&1 ||
    { cat "$build/configure.log" >&2; exit 2; }
fi
printf 'LibTorch %s.%s.%s headers in %s\n' $(sed -n 's/^#define TORCH_VERSION_\(MAJOR\|MINOR\|PATCH\) \([0-9]*\).*/\2/p' \
  "$include/torch/csrc/api/include/torch/version.h") "$include"
exec python3 - "$root" "$include" "$build" "${args[@]}" <<'EOF'
import glob, json, os, re, shlex, subprocess, sys, time

root, include, build = sys.argv[1:4]
args = sys.argv[4:]
pch = '--pch' in args
args = [a for a in args if a != '--pch']
cxx = 'g++'
if '--cxx' in args:
    i = args.index('--cxx')
    cxx = args[i + 1]
    del args[i:i + 2]
patterns = args
out = os.path.join(build, 'libtorch2-check')
os.makedirs(out, exist_ok=True)
new_includes = ['-isystem', include, '-isystem', include + '/torch/csrc/api/include']

jobs = []     # (source, directory, arguments without the compiler, output and source)
old_roots = set()
for entry in json.load(open(os.path.join(build, 'compile_commands.json'))):
    source = entry['file']
    if not source.startswith(root + '/') or '/_deps/' in source:
        continue
    argv = shlex.split(entry['command'])[1:]
    kept, skip = [], False
    for i, a in enumerate(argv):
        if skip:
            skip = False
            continue
        if a in ('-o', '-c', '-MF', '-MT', '-MQ', '-include'):
            skip = True
            continue
        if a in ('-MD', '-MMD', '-Winvalid-pch') or a == source:
            continue
        m = re.match(r'^(?:-isystem|-I)?(.*)/torch/csrc/api/include$', a)
        if m and (a.startswith('-') or (kept and kept[-1] in ('-isystem', '-I'))):
            old_roots.add(m.group(1))
            if not a.startswith('-'):
                kept.pop()
            kept += new_includes
            continue
        kept.append(a)
    if not any(a == include for a in kept):
        kept = new_includes + kept
    jobs.append((source, entry['directory'], kept))
# tools/fuzz.sh compiles the fuzz targets itself: -Iinclude -Isrc and the build's definitions
definitions = [a for a in jobs[0][2] if a.startswith('-D') and not a.startswith('-DNANOGPT')] if jobs else []
for source in sorted(glob.glob(os.path.join(root, 'tests/fuzz/*.cpp'))):
    jobs.append((source, root, ['-std=c++17', '-I' + root + '/include', '-I' + root + '/src'] + new_includes +
                 definitions))
if patterns:
    jobs = [j for j in jobs if any(p in os.path.relpath(j[0], root) for p in patterns)]
if not old_roots:
    old_roots.add('/usr/include')
old_dirs = tuple(os.path.join(r, d) + '/' for r in old_roots for d in ('torch', 'ATen', 'c10', 'caffe2'))

failed, lines = 0, []
for source, directory, argv in jobs:
    rel = os.path.relpath(source, root)
    command = ['nice', '-n', '19', cxx, '-fsyntax-only', '-H'] + (['-include', 'torch/torch.h'] if pch else []) + \
        argv + [source]
    start = time.time()
    run = subprocess.run(command, cwd=directory, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    seconds = time.time() - start
    headers, messages = [], []
    for line in run.stdout.splitlines():
        if re.match(r'^\.+ ', line):
            headers.append(os.path.normpath(line.split(' ', 1)[1]))
        elif not line.startswith('Multiple include guards') and not (line.startswith('/') and ':' not in line):
            messages.append(line)
    stray = sorted({h for h in headers if h.startswith(old_dirs)})
    with open(os.path.join(out, rel.replace('/', '__') + '.log'), 'w') as log:
        log.write(' '.join(shlex.quote(a) for a in command) + '\n' + '\n'.join(messages) + '\n')
        if stray:
            log.write('headers of the installed LibTorch, missing from ' + include + ':\n' + '\n'.join(stray) + '\n')
    errors = sum(1 for m in messages if ': error:' in m)
    ok = run.returncode == 0 and not stray
    failed += not ok
    line = f"{'ok  ' if ok else 'FAIL'} {rel:40} {errors} errors, {len(stray)} installed-LibTorch headers, {seconds:.0f} s"
    print(line, flush=True)
    lines.append(line)
    if not ok:
        for m in messages[:12] + (['  ' + s for s in stray[:5]] if stray else []):
            print('     ' + m, flush=True)
total = f'{len(jobs) - failed} of {len(jobs)} translation units ok ({"with" if pch else "without"} -include torch/torch.h)'
open(os.path.join(out, 'SUMMARY'), 'w').write('\n'.join(lines) + '\n' + total + '\n')
print(total)
sys.exit(1 if failed else 0)
EOF
