#!/usr/bin/env bash
# Fuzzes the YAML loading and validation path (trial configs and study files, with --set
# overrides) with libFuzzer under ASan + UBSan, seeded with tests/corpus/bad and configs/.
#   scripts/fuzz.sh [SECONDS]      default 60; CI runs it once (.ci/run)
# Builds only what the target needs (core/config, experiments/study/study.cpp and study_schema.cpp)
# with Debian's clang-14 in build/fuzz (ccache when present). A crash, sanitizer report or broken round trip fails the run
# and leaves the input in build/fuzz/crash-*; replay it with build/fuzz/config_fuzzer FILE.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
out=build/fuzz
cxx=clang++-14
command -v "$cxx" > /dev/null || { echo "fuzz.sh: $cxx not found (apt-get install clang-14)" >&2; exit 1; }
cc=("$cxx")
command -v ccache > /dev/null && cc=(ccache "$cxx")
export CCACHE_BASEDIR="$PWD"
flags=(-std=c++20 -O1 -gline-tables-only -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined
       -fsanitize=fuzzer-no-link -I. -Wall -Wextra -Werror)
mkdir -p "$out/obj" "$out/corpus" "$out/seeds"

# Compile two at a time (2 cores), then link with libFuzzer's main.
objs=()
pids=()
for src in core/config/*.cpp experiments/study/study.cpp experiments/study/study_schema.cpp tests/fuzz/config_fuzzer.cpp; do
  obj="$out/obj/$(echo "$src" | tr / _).o"
  objs+=("$obj")
  "${cc[@]}" "${flags[@]}" -c "$src" -o "$obj" &
  pids+=($!)
  if ((${#pids[@]} == 2)); then
    wait "${pids[0]}"
    wait "${pids[1]}"
    pids=()
  fi
done
for p in "${pids[@]}"; do wait "$p"; done
"$cxx" -fsanitize=fuzzer,address,undefined "${objs[@]}" -lyaml-cpp -o "$out/config_fuzzer"

# Seeds: every bad corpus case (its .args appended as "#--set" lines) and the example configs.
rm -f "$out"/seeds/*
for f in tests/corpus/bad/*.yaml configs/*.yaml; do
  seed="$out/seeds/$(basename "$f")"
  cp "$f" "$seed"
  args="${f%.yaml}.args"
  if [[ -e $args ]]; then
    printf '\n#--set\n' >> "$seed"
    tr ' ' '\n' < "$args" | grep -v '^--set$' >> "$seed"
  fi
done

cd "$out"
set +e
./config_fuzzer -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=4096 -print_final_stats=1 \
  corpus seeds > fuzz.log 2>&1
rc=$?
set -e
grep -E "^(stat::number_of_executed_units|Done)" fuzz.log || true
if ((rc != 0)); then
  tail -60 fuzz.log
  echo "fuzz.sh: the fuzzer found a problem (exit code $rc); inputs saved as $out/crash-* or $out/leak-*" >&2
  exit 1
fi
echo "fuzz.sh: $(sed -n 's/^stat::number_of_executed_units: *//p' fuzz.log) executions in ${seconds} s, no crash"
