#!/usr/bin/env bash
# Runs the fuzz targets in fuzz/ one after another, each for FUZZ_SECONDS
# (600 unless set), and prints per target the inputs it ran and whether it
# crashed. Exits non-zero after a crash, naming the file that holds the
# crashing input. Arguments name targets to run; none means all of them.
#
# Everything it writes lives under $STATE/fuzz (/var/tmp/layerlab/fuzz):
#   corpus/<target>/     inputs the fuzzer found, kept between runs; the
#                        seeds in fuzz/corpus/<target>/ are read, never
#                        written (libFuzzer adds new inputs to the first
#                        corpus directory it is given only)
#   artifacts/<target>/  crashing, leaking or slow inputs
#   logs/<target>.log    the fuzzer's output
# and the build in $STATE/target-fuzz-nightly.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
state=${STATE:-/var/tmp/layerlab}
seconds=${FUZZ_SECONDS:-600}
work=$state/fuzz
target_dir=$state/target-fuzz-nightly
cd "$root"

if [ $# -gt 0 ]; then
  targets=("$@")
else
  mapfile -t targets < <(cargo +nightly fuzz list)
fi

# One build for all targets: they share every dependency.
nice -n 19 cargo +nightly fuzz build --target-dir "$target_dir"
bin_dir=$target_dir/$(rustc +nightly -vV | sed -n 's/^host: //p')/release

failed=()
printf '%-18s %8s %14s %8s\n' target seconds executions crashes
for target in "${targets[@]}"; do
  corpus=$work/corpus/$target
  artifacts=$work/artifacts/$target
  log=$work/logs/$target.log
  mkdir -p "$corpus" "$artifacts" "$(dirname "$log")"
  before=$(ls "$artifacts" | wc -l)
  started=$(date +%s)
  # -jobs=1 runs the fuzzer in a child whose log the parent prints when it
  # ends; the child stops at the first crash. In the log's directory, as
  # libFuzzer writes fuzz-<job>.log to the working directory.
  status=0
  (cd "$(dirname "$log")" && nice -n 19 "$bin_dir/$target" \
    -max_total_time="$seconds" -jobs=1 -timeout=60 -rss_limit_mb=2048 \
    -artifact_prefix="$artifacts/" \
    "$corpus" "$root/fuzz/corpus/$target") >"$log" 2>&1 || status=$?
  elapsed=$(( $(date +%s) - started ))
  # libFuzzer's last status line: `#<runs> <event> cov: …`, or `Done <runs> runs`.
  runs=$(grep -oE '^#[0-9]+|^Done [0-9]+ runs' "$log" | tail -n 1 | grep -oE '[0-9]+' || true)
  crash=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -n 1)
  after=$(ls "$artifacts" | wc -l)
  crashes=0
  if [ -n "$crash" ] || [ "$after" -gt "$before" ] || [ "$status" -ne 0 ]; then
    crashes=1
  fi
  printf '%-18s %8s %14s %8s\n' "$target" "$elapsed" "${runs:-?}" "$crashes"
  if [ "$crashes" -ne 0 ]; then
    failed+=("$target")
    echo "  $target crashed (exit $status); input: ${crash:-see $artifacts}; log: $log" >&2
  fi
done

if [ ${#failed[@]} -gt 0 ]; then
  echo "crashed: ${failed[*]}; reproduce one with: cargo +nightly fuzz run <target> <input>" >&2
  exit 1
fi
