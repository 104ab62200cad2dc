#!/usr/bin/env bash
# ctest-labels: slow
# The AVX2 code paths as an AVX2-only machine compiles them: the release preset builds with
# -march=native, so on an AVX-512 machine the kernels' compile-time choices (simd_lanes.hpp's lane
# types, gla.cpp's default vector width, GCC's auto-vectorisation) only ever take their AVX-512
# branch. This builds the kernel tests again for x86-64-v3 (AVX2 + FMA, no AVX-512) in a separate
# tree under the build directory and runs them: every fast kernel against its reference, the GEMM
# backends, the lane paths (the 64-byte one must report itself not compiled, which proves the
# build is AVX2-only). Skipped (exit 77) on a CPU without AVX2 and FMA, which cannot run the result.
source "$(dirname "$0")/lib.sh"
grep -qw avx2 /proc/cpuinfo && grep -qw fma /proc/cpuinfo || { echo "CPU without AVX2 + FMA: skipped"; exit 77; }
tree="${EXPT_BINARY_DIR:?}/x86-64-v3"
cmake -S "$EXPT_SOURCE_DIR" -B "$tree" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_CXX_FLAGS_RELEASE="-O3 -march=x86-64-v3 -DNDEBUG -Wno-maybe-uninitialized" -DEXPT_BUILD_BENCH=OFF \
  > "$work/configure.log" 2>&1 || die "configure failed: $(tail -20 "$work/configure.log")"
# One compile job: the other tests run beside this one on the same cores.
cmake --build "$tree" -j 1 --target test_kernels > "$work/build.log" 2>&1 ||
  die "the x86-64-v3 build failed: $(tail -40 "$work/build.log")"
"$tree/tests/test_kernels" > "$work/test.log" 2>&1 || die "kernel tests failed on the x86-64-v3 build: $(tail -60 "$work/test.log")"
grep -q "AVX-512 lane path not compiled in this build" "$work/test.log" ||
  die "the x86-64-v3 build compiled the AVX-512 lanes: it is not an AVX2-only build"
tail -1 "$work/test.log"
