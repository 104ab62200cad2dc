#!/usr/bin/env bash
# The NCCL path compiles: core/comm/nccl_communicator.cpp and its test are built only when CMake
# finds CUDA and NCCL, which no CI machine has. When CUDA's headers are present (CUDA_HOME or
# /usr/local/cuda), both files are compiled here with the project's warning flags against them and
# a declaration-only nccl.h (tests/nccl/stub/nccl.h; nothing is linked or run). Skipped (exit 77)
# without CUDA headers. The NCCL runtime test itself ("nccl: communicator at 2 ranks") skips
# visibly without a GPU.
source "$(dirname "$0")/lib.sh"
cuda_include=${CUDA_HOME:-/usr/local/cuda}/include
[[ -f $cuda_include/cuda_runtime.h ]] || { echo "no CUDA headers under $cuda_include: skipped"; exit 77; }
mpi_includes=()
for dir in $(mpicxx --showme:incdirs); do mpi_includes+=(-isystem "$dir"); done
for source in core/comm/nccl_communicator.cpp tests/nccl/nccl_communicator_test.cpp; do
  "${CXX:-c++}" -std=c++20 -Wall -Wextra -Wpedantic -Wshadow -Werror -fsyntax-only -DOMPI_SKIP_MPICXX \
    -I"$EXPT_SOURCE_DIR" -isystem "$EXPT_SOURCE_DIR/tests/nccl/stub" -isystem "$cuda_include" "${mpi_includes[@]}" \
    "$EXPT_SOURCE_DIR/$source" || die "$source does not compile against CUDA's headers"
  echo "compiles: $source"
done
