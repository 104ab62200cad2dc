// What the processor is and what each GEMM backend runs on it, and the start-up check that they
// agree ("never silently slow", docs/performance.md).
//
// The CPU's instruction sets come from cpuid (leaf 1, leaf 7 subleaves 0 and 1) and the OS's
// XCR0 register: AVX and AVX-512 count only when the OS saves their registers. OpenBLAS picks its
// kernels from a table of CPU models known to its release (or from OPENBLAS_CORETYPE), so on a
// newer processor it can fall back to an old core ("Prescott": SSE3) or, when forced, to a
// narrower one than the CPU has; oneDNN's JIT dispatches on the instruction sets themselves.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace expt::kernels {

// The widest fp32 vector level a GEMM kernel can use, in order. (AMX multiplies bf16 and int8
// only, so for fp32 an AMX processor is an avx512 one.)
enum class VectorIsa { sse, avx, avx2, avx512 };
const char* vector_isa_name(VectorIsa isa);

struct CpuFeatures {
  std::string model;             // cpuid brand string, e.g. "AMD EPYC 9R14 96-Core Processor"
  std::string vendor;            // cpuid leaf 0, e.g. "AuthenticAMD", "GenuineIntel"
  int family = 0;                // cpuid leaf 1 display family: base + extended (AMD Zen 3/4: 0x19, Zen 5: 0x1A)
  std::vector<std::string> isa;  // e.g. {"sse4_2", "avx", "fma", "avx2", "avx512f", ..., "avx512_bf16", "amx_bf16"}
  bool has(std::string_view name) const;
  VectorIsa widest() const;      // avx512 (avx512f), avx2 (avx2 + fma), avx, sse
  std::string isa_list() const;  // space-separated
  // The widest vector the core's arithmetic units execute whole, in bits: what bounds its fp32
  // rate. 512 on AVX-512 cores but one: AMD's Zen 4 (family 19h with AVX-512F) runs each 512-bit
  // operation as two 256-bit halves, so its fp32 limit is the AVX2 one and its AVX2 kernels run
  // as fast as its AVX-512 ones (docs/performance.md "Zen 4"). cpuid does not report the width,
  // so this one fact is keyed on vendor and family; any other AVX-512 core counts as 512
  // (decision 169). 256 on AVX and AVX2 cores, 128 below.
  int datapath_bits() const;
};

// This machine (cpuid + xgetbv; computed once).
const CpuFeatures& cpu_features();

// OpenBLAS's kernel (openblas_get_corename(), e.g. "Haswell") and the vector level that kernel
// uses; nullopt for a name this table does not know.
std::string openblas_core_name();
std::optional<VectorIsa> openblas_core_isa(std::string_view core);

// oneDNN's effective ISA for its JIT kernels (e.g. "avx512_core_bf16") and its vector level.
std::string onednn_isa_name();
VectorIsa onednn_isa();

// The one line `expt` prints at start-up when the float GEMM backend in use runs kernels narrower
// than the processor's widest vector level, or nullopt when they agree. Pure (unit-tested with
// fake names): `backend` is "openblas" or "onednn", `kernel_isa` the level that backend runs
// (nullopt: unknown kernel name), `kernel` its name as the library reports it.
std::optional<std::string> gemm_mismatch_warning(std::string_view backend, std::string_view kernel,
                                                 std::optional<VectorIsa> kernel_isa, const CpuFeatures& cpu);

// The check above for this process's backend.
std::optional<std::string> gemm_startup_warning();

// Where the fp32 symmetric rank-k update (syrk_upper, kernels/gemm.hpp) runs under the default
// backend (libxsmm; a forced one runs its own): oneDNN has no syrk, and its row panels of general
// products reach 1.4x OpenBLAS's ssyrk on a full-width AVX-512 core but 0.66-0.83x of it on a
// 256-bit one (AMD EPYC Zen 3, AVX2; Zen 4, AVX-512 in halves: docs/performance.md "AVX2" and
// "Zen 4"), so there they go to OpenBLAS, provided its kernels are AVX2 or wider (an OpenBLAS that
// fell back to an older core would be the slower choice again). Pure, unit-tested with fake CPUs;
// syrk_on_openblas() is its answer for this machine (computed once). Decisions 140 and 169.
bool prefer_openblas_syrk(const CpuFeatures& cpu, std::optional<VectorIsa> openblas_kernel_isa);
bool syrk_on_openblas();

// Whether Linear's forward product y = x W^T reads W from a transposed copy, W^T [in, out] made
// once per call (an NN product), instead of in place (NT). On AMD Zen 4, oneDNN's AVX-512 sgemm
// runs the NN form of the model's projections and MLP products 8-10 % faster than the NT form,
// more than the copy costs; on full-width AVX-512 cores the two forms are within 3 %, and with
// AVX2 kernels (Zen 3) the NT form is the faster one, so everywhere else W is read in place. Only
// for products on oneDNN (the default backend's and a forced onednn's; a forced openblas reads W
// in place). Pure, unit-tested with fake CPUs; forward_reads_transposed_weight() is the answer for
// this process (its backend and CPU). Decision 169.
bool prefer_transposed_forward_weight(bool products_on_onednn, VectorIsa onednn_kernel_isa, const CpuFeatures& cpu);
bool forward_reads_transposed_weight();

// train.precision: bf16 needs bf16 dot-product instructions (avx512_bf16 or amx_bf16) for
// oneDNN's bf16 kernels and expt's operand conversion, and oneDNN allowed to use them
// (`onednn_isa`, onednn_isa_name(): avx512_core_bf16 or avx512_core_amx; DNNL_MAX_CPU_ISA can
// limit it, and then oneDNN has no bf16 matmul at all). The error text (names the CPU, what it
// has or what limits oneDNN, and the fix), nullopt when both hold. Pure, unit-tested with fake
// instruction sets; require_bf16_support() throws std::runtime_error with it for this machine.
std::optional<std::string> bf16_support_error(const CpuFeatures& cpu, std::string_view onednn_isa);
void require_bf16_support();

// The machine line of logs and `expt bench`: the CPU (model, widest level, "in 256-bit halves"
// where datapath_bits() says so, instruction sets), the GEMM backend with its kernels and the
// choices above ("syrk openblas", "forward reads W^T"), and OpenBLAS's core.
std::string gemm_machine_summary();

}  // namespace expt::kernels
