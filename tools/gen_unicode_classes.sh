#!/usr/bin/env bash
# Regenerates src/tokenizer/unicode_classes.inc from the npm package @unicode/unicode-$UNICODE_VERSION.
# tiktoken's "gpt2" pre-tokenizer runs on Rust's regex-syntax tables; tiktoken 1.0.22 (npm)
# has regex-syntax 0.8.5, which is Unicode 16.0.0. The ids of a random text with characters
# new in Unicode 15.1 and 16.0 are checked against Python's tiktoken in CI
# (tests/test_tiktoken_client.py).
# Usage: tools/gen_unicode_classes.sh   (needs node and npm with the npm registry reachable)
set -euo pipefail
cd "$(dirname "$0")/.."
version="${UNICODE_VERSION:-16.0.0}"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
npm install --silent --prefix "$tmp" "@unicode/unicode-$version" > /dev/null
node tools/gen_unicode_classes.mjs "$tmp/node_modules/@unicode/unicode-$version" > src/tokenizer/unicode_classes.inc
echo "wrote src/tokenizer/unicode_classes.inc ($(grep -c CodeClass src/tokenizer/unicode_classes.inc) ranges, Unicode $version)"
