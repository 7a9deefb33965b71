# scripts/lib.sh - shared by scripts/test, scripts/test-sanitizers, .ci/run.
# Counts results across suites; sourced, not run.

ISOLA_PASSED=0
ISOLA_FAILED=0
ISOLA_FAILED_SUITES=""

cd_root() { cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 2; }

# Pythons >= 3.12 whose embedding pkg-config module is installed.
pythons() {
  for v in 3.12 3.13 3.14; do
    pkg-config --exists "python-$v-embed" 2>/dev/null && echo "$v"
  done
}

# python_bin VERSION: the interpreter the build for VERSION was made
# against (Debian's, found by pkg-config), not a pyenv shim on PATH.
python_bin() {
  if [ -x "/usr/bin/python$1" ]; then echo "/usr/bin/python$1"; else echo "python$1"; fi
}

# configure_build DIR [meson options...]: set up (once) and build DIR.
configure_build() {
  local dir=$1; shift
  if [ ! -f "$dir/build.ninja" ]; then
    meson setup "$dir" "$@" >"$dir.setup.log" 2>&1 ||
      { cat "$dir.setup.log" >&2; return 1; }
  fi
  ninja -C "$dir" >"$dir.build.log" 2>&1 || { tail -40 "$dir.build.log" >&2; return 1; }
}

# record LABEL PASSED FAILED: counted, and printed with the seconds since
# the last record (what each suite costs CI: scripts keep it under budget).
ISOLA_LAST_RECORD=$SECONDS
record() {
  ISOLA_PASSED=$((ISOLA_PASSED + $2))
  ISOLA_FAILED=$((ISOLA_FAILED + $3))
  [ "$3" -gt 0 ] && ISOLA_FAILED_SUITES="$ISOLA_FAILED_SUITES $1"
  printf '  %-44s %4d passed, %d failed  (%ds)\n' "$1" "$2" "$3" $((SECONDS - ISOLA_LAST_RECORD))
  ISOLA_LAST_RECORD=$SECONDS
}

# run_criterion LABEL COMMAND...: run a Criterion (or stand-in) test
# binary (COMMAND may start with env or valgrind) and count its synthesis
# line; a run with no such line, or a non-zero exit with no failure
# counted, counts as one failure.
run_criterion() {
  local label=$1; shift
  local out rc
  out=$("$@" 2>&1); rc=$?
  local line
  line=$(printf '%s\n' "$out" | grep -E 'Synthesis: Tested: [0-9]+' | tail -1)
  if [ -z "$line" ]; then
    printf '%s\n' "$out" | tail -30 >&2
    record "$label" 0 1
    return
  fi
  local passing failing crashing
  passing=$(sed -E 's/.*Passing: ([0-9]+).*/\1/' <<<"$line")
  failing=$(sed -E 's/.*Failing: ([0-9]+).*/\1/' <<<"$line")
  crashing=$(sed -E 's/.*Crashing: ([0-9]+).*/\1/' <<<"$line")
  local failed=$((failing + crashing))
  if [ "$rc" -ne 0 ] && [ "$failed" -eq 0 ]; then failed=1; fi
  [ "$failed" -gt 0 ] && printf '%s\n' "$out" | grep -E '^\[(FAIL|----)\]|ERROR|WARNING' | head -40 >&2
  record "$label" "$passing" "$failed"
}

# run_counted LABEL COMMAND...: a command printing "N passed, N failed".
run_counted() {
  local label=$1; shift
  local out rc
  out=$("$@" 2>&1); rc=$?
  local line
  line=$(printf '%s\n' "$out" | grep -E '^[0-9]+ passed, [0-9]+ failed' | tail -1)
  if [ -z "$line" ]; then
    printf '%s\n' "$out" | tail -30 >&2
    echo "($label: no result line; exit status $rc$([ "$rc" -gt 128 ] && echo ", signal $((rc - 128))"))" >&2
    record "$label" 0 1
    return
  fi
  local p f
  p=$(sed -E 's/^([0-9]+) passed.*/\1/' <<<"$line")
  f=$(sed -E 's/.* ([0-9]+) failed.*/\1/' <<<"$line")
  if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi
  [ "$f" -gt 0 ] && printf '%s\n' "$out" | tail -40 >&2
  record "$label" "$p" "$f"
}

summary() {
  [ -n "$ISOLA_FAILED_SUITES" ] && echo "failed suites:$ISOLA_FAILED_SUITES" >&2
  echo "$ISOLA_PASSED passed, $ISOLA_FAILED failed"
  [ "$ISOLA_FAILED" -eq 0 ]
}
