#!/usr/bin/env bash
# Builds the libFuzzer targets with clang, ASan and UBSan, and runs each for a while over a copy
# of its committed seed corpus (the committed corpus is never written to). Fails when a target
# crashes, leaks, times out or runs out of memory; prints execs/s and coverage per target.
#
#   tests/fuzz/run.sh [SECONDS [TARGET...]]   # default: 30 s each, every target; 0: build only
#
# Environment:
#   PGR_FUZZ_BUILD_DIR  build dir (default: <repo>/build-fuzz); runs go to <build>/fuzz-runs/
#   PGR_FUZZ_JOBS       build parallelism (default: ninja's)
# A finding leaves its input in <build>/fuzz-runs/<target>/ (crash-*, leak-*, timeout-*, oom-*);
# reproduce it with `<build>/bin/<target> FILE` (tests/fuzz/README.md).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
readonly REPO
BUILD_DIR=$(realpath -m -- "${PGR_FUZZ_BUILD_DIR:-$REPO/build-fuzz}")
readonly BUILD_DIR
readonly SECS=${1:-30}
shift || true
ALL=(fuzz_envelope fuzz_event fuzz_migration fuzz_config fuzz_plan fuzz_sqltext fuzz_release)
if (($# > 0)); then TARGETS=("$@"); else TARGETS=("${ALL[@]}"); fi
readonly TARGETS

log() { printf 'fuzz/run.sh: %s\n' "$*" >&2; }
die() {
  log "error: $*"
  exit 1
}

[[ $SECS =~ ^[0-9]+$ ]] || die "SECONDS must be a whole number, not \"$SECS\""
for t in "${TARGETS[@]}"; do
  [[ " ${ALL[*]} " == *" $t "* ]] || die "unknown target \"$t\" (known: ${ALL[*]})"
done
command -v clang >/dev/null || die "clang not found: apt-get install clang libclang-rt-14-dev"
probe=$(mktemp -d)
trap 'rm -rf "$probe"' EXIT
printf 'int LLVMFuzzerTestOneInput(const char *d, unsigned long n);\nint LLVMFuzzerTestOneInput(const char *d, unsigned long n) { return d == 0 && n > 0; }\n' >"$probe/p.c"
clang -fsanitize=fuzzer "$probe/p.c" -o "$probe/p" 2>/dev/null ||
  die "clang cannot link a libFuzzer target: apt-get install libclang-rt-14-dev"

started=$SECONDS
log "configuring $BUILD_DIR (clang, ASan+UBSan, libFuzzer)"
mkdir -p "$BUILD_DIR"
# -O1: the usual fuzzing optimisation; Debug keeps PGR_ASSERT and frame pointers.
CC=clang cmake -S "$REPO" -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Debug \
  -DCMAKE_C_FLAGS_DEBUG="-g -O1" -DPGR_WERROR=ON -DPGR_SANITIZE=ON -DPGR_TESTS=OFF \
  -DPGR_FUZZ=ON >"$BUILD_DIR/configure.log" 2>&1 ||
  { cat "$BUILD_DIR/configure.log" >&2; die "cmake configure failed"; }
log "building"
cmake --build "$BUILD_DIR" ${PGR_FUZZ_JOBS:+-j "$PGR_FUZZ_JOBS"} -- -k 0 >&2 ||
  die "build failed"
log "built in $((SECONDS - started)) s"
((SECS > 0)) || exit 0

# Sanitizers stop at the first finding (libFuzzer then saves the input); caller's options win.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

# Real examples that are seeds where they live (tests/fuzz/make_corpus.sh does not copy them).
extra_seeds() {
  case $1 in
  fuzz_envelope) echo tests/fixtures/protocol/job_*.json ;;
  fuzz_migration | fuzz_sqltext) echo migrations/*.sql tests/lint/*/*/*.sql ;;
  fuzz_config) echo deploy/config/*.ini.example tests/fixtures/protocol/example.pub ;;
  fuzz_plan) echo deploy/config/plan.json.example ;;
  fuzz_release) echo tests/fixtures/protocol/release_manifest.json ;;
  esac
}

RUNS=$BUILD_DIR/fuzz-runs
summary=()
passed=0
failed=0
for t in "${TARGETS[@]}"; do
  work=$RUNS/$t
  rm -rf "$work"
  # fuzz_plan resolves "migrations": an empty directory of that name in the working dir
  mkdir -p "$work/corpus" "$work/migrations"
  cp "$REPO/tests/fuzz/corpus/$t/"* "$work/corpus/"
  n=0
  for f in $(cd "$REPO" && extra_seeds "$t"); do
    n=$((n + 1))
    cp "$REPO/$f" "$work/corpus/seed-$n-$(basename "$f")"
  done
  seeds=$(find "$work/corpus" -type f | wc -l)
  dict=()
  [[ -f $REPO/tests/fuzz/dict/$t.dict ]] && dict=(-dict="$REPO/tests/fuzz/dict/$t.dict")
  log "$t: ${SECS}s over $seeds seeds"
  set +e
  (cd "$work" && "$BUILD_DIR/bin/$t" -max_total_time="$SECS" -timeout=10 -rss_limit_mb=2048 \
    -print_final_stats=1 -artifact_prefix="$work/" "${dict[@]}" corpus) >"$work/log" 2>&1
  rc=$?
  set -e
  done_line=$(grep -E '^#[0-9]+[[:space:]]+DONE' "$work/log" | tail -n 1 || true)
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/log")
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$work/log")
  cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$done_line")
  ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$done_line")
  corp=$(find "$work/corpus" -type f | wc -l)
  findings=$(find "$work" -maxdepth 1 -type f \( -name 'crash-*' -o -name 'leak-*' -o \
    -name 'timeout-*' -o -name 'oom-*' \) | wc -l)
  if ((rc == 0 && findings == 0)) && [[ -n $done_line ]]; then
    status=ok
    passed=$((passed + 1))
  else
    status=FAILED
    failed=$((failed + 1))
    log "$t FAILED (exit $rc): last lines of $work/log:"
    grep -E 'ERROR|SUMMARY|runtime error|violated|Test unit written' "$work/log" | head -n 20 >&2  || true
    tail -n 30 "$work/log" >&2
  fi
  summary+=("$(printf '%-15s %-6s %5ss  execs %10s  exec/s %7s  cov %5s  ft %6s  corpus %4s -> %5s' \
    "$t" "$status" "$SECS" "${execs:-?}" "${rate:-?}" "${cov:-?}" "${ft:-?}" "$seeds" "$corp")")
done

printf '\nfuzz summary (%s s per target, logs in %s/<target>/log):\n' "$SECS" "$RUNS"
printf '  %s\n' "${summary[@]}"
printf 'fuzz: %d passed, %d failed\n' "$passed" "$failed"
((failed == 0))
