#!/bin/sh
# Score berth's TOML parser on the toml-test corpus (TOML 1.0.0) with the
# shared runner; every test must pass.  SKIP (77) when ../shared is absent.
top_srcdir=${top_srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}
top_builddir=${top_builddir:-.}
runner="$top_srcdir/../shared/tools/toml-test-run"
corpus="$top_srcdir/../shared/testdata/toml-test/toml-1.0.0"
decoder="$top_builddir/tests/toml-test-decoder"
expected="709 passed, 0 failed"

if [ ! -x "$runner" ] || [ ! -d "$corpus" ]; then
  echo "SKIP: toml-test runner or corpus not found under $top_srcdir/../shared"
  exit 77
fi
if ! command -v python3 >/dev/null 2>&1; then
  echo "SKIP: python3 (needed by toml-test-run) not installed"
  exit 77
fi
if [ ! -x "$decoder" ]; then
  echo "FAIL: $decoder not built"
  exit 1
fi

echo "running: $runner --corpus $corpus -- $decoder"
out=$("$runner" --corpus "$corpus" -- "$decoder" 2>&1)
echo "$out" | tail -n 40
last=$(echo "$out" | tail -n 1)
if [ "$last" != "$expected" ]; then
  echo "FAIL: expected \"$expected\", got \"$last\""
  exit 1
fi
echo "toml-test: $last"
