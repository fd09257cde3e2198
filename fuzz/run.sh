#!/usr/bin/env bash
# Fuzzes ORB's parsers: builds every cargo-fuzz target of fuzz/, replays the committed regression inputs,
# then runs each target for SECONDS (default 60) from its committed seed corpus, one target at a time.
# Fails if any target crashes (a panic, a failed assertion, a timeout of 10 s on one input, or running out of
# memory); the crashing input is left under fuzz/artifacts/<target>/. Prints the executions per target.
#
#   bash fuzz/run.sh [SECONDS]
#
# Installs cargo-fuzz if it is missing. The toolchain is stable, so RUSTC_BOOTSTRAP=1 lets cargo-fuzz use
# its -Z flags. No sanitizer: ORB is safe Rust (`unsafe_code = "forbid"`), so AddressSanitizer would only
# slow the run; debug assertions are on (integer overflow panics). Build output goes to
# $CARGO_TARGET_DIR/fuzz when CARGO_TARGET_DIR is set, else fuzz/target. The seed corpus is only read:
# what the fuzzer finds goes to a temporary folder that is removed afterwards.
set -euo pipefail
seconds="${1:-60}"
case "$seconds" in '' | *[!0-9]*) echo "usage: bash fuzz/run.sh [SECONDS]" >&2; exit 2 ;; esac
cd "$(dirname "$0")/.."

export RUSTC_BOOTSTRAP=1
if [ -n "${CARGO_TARGET_DIR:-}" ]; then target_dir="$CARGO_TARGET_DIR/fuzz"; else target_dir="$(pwd)/fuzz/target"; fi
flags=(--sanitizer none --debug-assertions --target-dir "$target_dir")

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "== installing cargo-fuzz"
  cargo install cargo-fuzz --locked
fi

echo "== building the fuzz targets"
cargo fuzz build "${flags[@]}"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failed=()
summary=()
for target in $(cargo fuzz list); do
  regressions=(fuzz/regressions/"$target"/*)
  if [ -e "${regressions[0]}" ]; then
    echo "== $target: replaying ${#regressions[@]} regression input(s)"
    if ! cargo fuzz run "${flags[@]}" "$target" "${regressions[@]}" >"$work/$target.replay.log" 2>&1; then
      tail -n 40 "$work/$target.replay.log"
      failed+=("$target (regression)")
      continue
    fi
  fi
  echo "== $target: fuzzing for ${seconds}s"
  mkdir -p "$work/$target"
  status=0
  cargo fuzz run "${flags[@]}" "$target" "$work/$target" "fuzz/corpus/$target" -- \
    -max_total_time="$seconds" -timeout=10 -print_final_stats=1 >"$work/$target.log" 2>&1 || status=$?
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/$target.log" | tail -n 1)
  cov=$(grep -o 'cov: [0-9]*' "$work/$target.log" | tail -n 1 || true)
  if [ "$status" != 0 ]; then
    tail -n 60 "$work/$target.log"
    failed+=("$target")
    summary+=("$(printf '%-20s CRASHED (exit %s); input under fuzz/artifacts/%s/' "$target" "$status" "$target")")
  else
    summary+=("$(printf '%-20s %12s executions in %ss, %s' "$target" "${execs:-?}" "$seconds" "${cov:-cov: ?}")")
  fi
done

echo
echo "== fuzzing summary"
printf '%s\n' "${summary[@]}"
if [ "${#failed[@]}" -gt 0 ]; then
  echo "error: fuzzing found crashes in: ${failed[*]}" >&2
  echo "reproduce with: RUSTC_BOOTSTRAP=1 cargo fuzz run --sanitizer none --debug-assertions <target> <input>;" >&2
  echo "fix the crate, add a regression unit test there and commit the input under fuzz/regressions/<target>/" >&2
  exit 1
fi
