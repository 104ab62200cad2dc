#include "kernels/processor.hpp"

#include <cpuid.h>
#include <oneapi/dnnl/dnnl.h>

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <stdexcept>

#include "kernels/gemm.hpp"

extern "C" char* openblas_get_corename(void);

namespace expt::kernels {

namespace {

bool bit(unsigned value, int b) { return ((value >> b) & 1u) != 0; }

std::uint64_t xcr0() {
  std::uint32_t lo = 0, hi = 0;
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  return (static_cast<std::uint64_t>(hi) << 32) | lo;
}

CpuFeatures detect() {
  CpuFeatures f;
  unsigned a = 0, b = 0, c = 0, d = 0;
  // Brand string: leaves 0x80000002..4, 48 bytes.
  char brand[49] = {};
  if (__get_cpuid_max(0x80000000u, nullptr) >= 0x80000004u) {
    for (unsigned leaf = 0; leaf < 3; ++leaf) {
      __get_cpuid(0x80000002u + leaf, &a, &b, &c, &d);
      const unsigned regs[4] = {a, b, c, d};
      std::memcpy(brand + 16 * leaf, regs, 16);
    }
  }
  f.model = brand;
  f.model.erase(0, f.model.find_first_not_of(' '));
  f.model.erase(f.model.find_last_not_of(' ') + 1);
  if (f.model.empty()) f.model = "unknown x86-64";

  const unsigned max_leaf = __get_cpuid_max(0, nullptr);
  {
    unsigned regs[4] = {};
    __get_cpuid(0, &regs[0], &regs[1], &regs[2], &regs[3]);
    char vendor[13] = {};
    std::memcpy(vendor, &regs[1], 4);  // ebx, edx, ecx: "Auth" "enti" "cAMD"
    std::memcpy(vendor + 4, &regs[3], 4);
    std::memcpy(vendor + 8, &regs[2], 4);
    f.vendor = vendor;
  }
  if (!__get_cpuid(1, &a, &b, &c, &d)) return f;
  // Display family: the base family (bits 8-11), plus the extended family (bits 20-27) when the
  // base is 0xF.
  const unsigned base_family = (a >> 8) & 0xFu;
  f.family = static_cast<int>(base_family == 0xFu ? base_family + ((a >> 20) & 0xFFu) : base_family);
  auto add = [&](bool present, const char* name) {
    if (present) f.isa.emplace_back(name);
  };
  add(bit(d, 26), "sse2");
  add(bit(c, 0), "sse3");
  add(bit(c, 19), "sse4_1");
  add(bit(c, 20), "sse4_2");
  // AVX state must be enabled by the OS (OSXSAVE and XCR0 bits 1-2); AVX-512 needs bits 5-7 too.
  const bool os_avx = bit(c, 27) && (xcr0() & 0x6) == 0x6;
  const bool os_avx512 = os_avx && (xcr0() & 0xE0) == 0xE0;
  const bool os_amx = os_avx && (xcr0() & 0x60000) == 0x60000;
  add(os_avx && bit(c, 28), "avx");
  add(os_avx && bit(c, 12), "fma");
  if (max_leaf >= 7) {
    __cpuid_count(7, 0, a, b, c, d);
    add(os_avx && bit(b, 5), "avx2");
    add(os_avx512 && bit(b, 16), "avx512f");
    add(os_avx512 && bit(b, 17), "avx512dq");
    add(os_avx512 && bit(b, 30), "avx512bw");
    add(os_avx512 && bit(b, 31), "avx512vl");
    add(os_avx512 && bit(c, 11), "avx512_vnni");
    add(os_amx && bit(d, 24), "amx_tile");
    add(os_amx && bit(d, 22), "amx_bf16");
    const unsigned sub1_a = [&] {
      unsigned a1 = 0, b1 = 0, c1 = 0, d1 = 0;
      __cpuid_count(7, 1, a1, b1, c1, d1);
      return a1;
    }();
    add(os_avx512 && bit(sub1_a, 5), "avx512_bf16");
  }
  return f;
}

// Peak fp32 flops per cycle of one core running kernels of a level, relative: SSE 4-wide add +
// mul, AVX 8-wide add + mul, AVX2 two 8-wide FMA units, AVX-512 two 16-wide; no more than the
// core's datapath executes whole (AVX-512 on Zen 4's 256-bit halves: the AVX2 rate).
int relative_peak(VectorIsa isa, int datapath_bits) {
  switch (isa) {
    case VectorIsa::sse:
      return 1;
    case VectorIsa::avx:
      return 2;
    case VectorIsa::avx2:
      return 4;
    case VectorIsa::avx512:
      return datapath_bits >= 512 ? 8 : 4;
  }
  return 1;
}

}  // namespace

const char* vector_isa_name(VectorIsa isa) {
  switch (isa) {
    case VectorIsa::sse:
      return "sse";
    case VectorIsa::avx:
      return "avx";
    case VectorIsa::avx2:
      return "avx2";
    case VectorIsa::avx512:
      return "avx512";
  }
  return "?";
}

bool CpuFeatures::has(std::string_view name) const { return std::find(isa.begin(), isa.end(), name) != isa.end(); }

VectorIsa CpuFeatures::widest() const {
  if (has("avx512f")) return VectorIsa::avx512;
  if (has("avx2") && has("fma")) return VectorIsa::avx2;
  if (has("avx")) return VectorIsa::avx;
  return VectorIsa::sse;
}

int CpuFeatures::datapath_bits() const {
  const VectorIsa level = widest();
  if (level == VectorIsa::avx512) return vendor == "AuthenticAMD" && family == 0x19 ? 256 : 512;
  return level == VectorIsa::sse ? 128 : 256;
}

std::string CpuFeatures::isa_list() const {
  std::string out;
  for (const auto& s : isa) out += (out.empty() ? "" : " ") + s;
  return out;
}

const CpuFeatures& cpu_features() {
  static const CpuFeatures features = detect();
  return features;
}

std::string openblas_core_name() { return openblas_get_corename(); }

std::optional<VectorIsa> openblas_core_isa(std::string_view core) {
  // OpenBLAS's DYNAMIC_ARCH cores (x86-64), by the widest vector level their sgemm kernel uses.
  static const std::pair<const char*, VectorIsa> table[] = {
      {"Prescott", VectorIsa::sse},      {"Core2", VectorIsa::sse},
      {"Penryn", VectorIsa::sse},        {"Dunnington", VectorIsa::sse},
      {"Nehalem", VectorIsa::sse},       {"Atom", VectorIsa::sse},
      {"Opteron", VectorIsa::sse},       {"Opteron_SSE3", VectorIsa::sse},
      {"Barcelona", VectorIsa::sse},     {"Bobcat", VectorIsa::sse},
      {"Bulldozer", VectorIsa::avx},     {"Piledriver", VectorIsa::avx},
      {"Steamroller", VectorIsa::avx},   {"Excavator", VectorIsa::avx2},
      {"Sandybridge", VectorIsa::avx},   {"Haswell", VectorIsa::avx2},
      {"Zen", VectorIsa::avx2},          {"SkylakeX", VectorIsa::avx512},
      {"Cooperlake", VectorIsa::avx512}, {"SapphireRapids", VectorIsa::avx512}};
  for (const auto& [name, isa] : table)
    if (core.size() == std::strlen(name) && std::equal(core.begin(), core.end(), name, [](char x, char y) {
          return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
        }))
      return isa;
  return std::nullopt;
}

std::string onednn_isa_name() {
  switch (dnnl_get_effective_cpu_isa()) {
    case dnnl_cpu_isa_sse41:
      return "sse41";
    case dnnl_cpu_isa_avx:
      return "avx";
    case dnnl_cpu_isa_avx2:
      return "avx2";
    case dnnl_cpu_isa_avx2_vnni:
      return "avx2_vnni";
    case dnnl_cpu_isa_avx512_mic:
      return "avx512_mic";
    case dnnl_cpu_isa_avx512_mic_4ops:
      return "avx512_mic_4ops";
    case dnnl_cpu_isa_avx512_core:
      return "avx512_core";
    case dnnl_cpu_isa_avx512_core_vnni:
      return "avx512_core_vnni";
    case dnnl_cpu_isa_avx512_core_bf16:
      return "avx512_core_bf16";
    case dnnl_cpu_isa_avx512_core_amx:
      return "avx512_core_amx";
    default:
      return "unknown";
  }
}

VectorIsa onednn_isa() {
  const std::string name = onednn_isa_name();
  if (name.rfind("avx512", 0) == 0) return VectorIsa::avx512;
  if (name.rfind("avx2", 0) == 0) return VectorIsa::avx2;
  if (name == "avx") return VectorIsa::avx;
  return VectorIsa::sse;
}

std::optional<std::string> gemm_mismatch_warning(std::string_view backend, std::string_view kernel,
                                                 std::optional<VectorIsa> kernel_isa, const CpuFeatures& cpu) {
  const VectorIsa best = cpu.widest();
  const std::string head = "GEMM backend " + std::string(backend) + " runs its '" + std::string(kernel) + "' kernels";
  const std::string cpu_text = " on a CPU with " + std::string(vector_isa_name(best)) + " (" + cpu.model + ")";
  const std::string fix = backend == "openblas" ? "use the onednn backend (the default: unset EXPT_GEMM_BACKEND)"
                                                : "check DNNL_MAX_CPU_ISA, or use EXPT_GEMM_BACKEND=openblas";
  if (!kernel_isa)
    return head + ", a kernel expt cannot rate," + cpu_text +
           ": its speed is unchecked; run `expt bench` to measure it, or " + fix;
  const int datapath = cpu.datapath_bits();
  if (relative_peak(*kernel_isa, datapath) >= relative_peak(best, datapath)) return std::nullopt;
  const int factor = relative_peak(best, datapath) / relative_peak(*kernel_isa, datapath);
  std::string why;
  if (backend == "openblas") {
    const char* forced = std::getenv("OPENBLAS_CORETYPE");
    why = forced != nullptr && *forced != '\0' ? " (OPENBLAS_CORETYPE=" + std::string(forced) + " is set)"
                                               : " (this OpenBLAS release does not know the processor)";
  }
  return head + " (" + vector_isa_name(*kernel_isa) + ")" + cpu_text + why + ": fp32 products can run up to " +
         std::to_string(factor) + "x below the machine's limit; " + fix;
}

std::optional<std::string> gemm_startup_warning() {
  // libxsmm's small products take its code-generation target from the same cpuid; its large
  // products, where the rate is, are oneDNN's.
  const GemmBackend backend = gemm_backend();
  if (backend != GemmBackend::openblas)
    return gemm_mismatch_warning(gemm_backend_name(backend), onednn_isa_name(), onednn_isa(), cpu_features());
  const std::string core = openblas_core_name();
  return gemm_mismatch_warning("openblas", core, openblas_core_isa(core), cpu_features());
}

std::optional<std::string> bf16_support_error(const CpuFeatures& cpu, std::string_view onednn_isa) {
  // The conversion uses VCVTNEPS2BF16 (avx512_bf16); AMX processors have it too.
  if (!(cpu.has("avx512_bf16") && cpu.has("avx512bw") && cpu.has("avx512vl")))
    return "train.precision: bf16 needs a CPU with the avx512_bf16 instructions (with avx512bw and avx512vl; every "
           "amx_bf16 processor has them); " +
           cpu.model + " has: " + (cpu.isa.empty() ? std::string("none detected") : cpu.isa_list()) +
           ". Use train.precision: fp32 on this machine";
  if (onednn_isa != "avx512_core_bf16" && onednn_isa != "avx512_core_amx") {
    const char* limit = std::getenv("DNNL_MAX_CPU_ISA");
    return "train.precision: bf16 needs oneDNN's bf16 kernels, but oneDNN runs at '" + std::string(onednn_isa) +
           "' on " + cpu.model + (limit != nullptr ? " (DNNL_MAX_CPU_ISA=" + std::string(limit) + " is set)" : "") +
           ". Unset DNNL_MAX_CPU_ISA or use train.precision: fp32";
  }
  return std::nullopt;
}

void require_bf16_support() {
  if (const auto error = bf16_support_error(cpu_features(), onednn_isa_name())) throw std::runtime_error(*error);
}

bool prefer_openblas_syrk(const CpuFeatures& cpu, std::optional<VectorIsa> openblas_kernel_isa) {
  const bool fma_256 = cpu.widest() >= VectorIsa::avx2 && cpu.datapath_bits() == 256;
  return fma_256 && openblas_kernel_isa.has_value() && *openblas_kernel_isa >= VectorIsa::avx2;
}

bool syrk_on_openblas() {
  static const bool on = prefer_openblas_syrk(cpu_features(), openblas_core_isa(openblas_core_name()));
  return on;
}

bool prefer_transposed_forward_weight(bool products_on_onednn, VectorIsa onednn_kernel_isa, const CpuFeatures& cpu) {
  return products_on_onednn && onednn_kernel_isa == VectorIsa::avx512 && cpu.datapath_bits() == 256;
}

bool forward_reads_transposed_weight() {
  static const VectorIsa onednn_level = onednn_isa();
  return prefer_transposed_forward_weight(gemm_backend() != GemmBackend::openblas, onednn_level, cpu_features());
}

std::string gemm_machine_summary() {
  const CpuFeatures& cpu = cpu_features();
  const GemmBackend backend = gemm_backend();
  const std::string kernel = backend == GemmBackend::openblas ? openblas_core_name()
                             : backend == GemmBackend::onednn
                                 ? onednn_isa_name()
                                 : onednn_isa_name() + ", small products libxsmm " + libxsmm_target_name();
  const std::string syrk = backend == GemmBackend::libxsmm && syrk_on_openblas() ? ", syrk openblas" : "";
  const std::string forward = forward_reads_transposed_weight() ? ", forward reads W^T" : "";
  const std::string halves =
      cpu.widest() == VectorIsa::avx512 && cpu.datapath_bits() == 256 ? " in 256-bit halves" : "";
  return "cpu " + cpu.model + " (" + vector_isa_name(cpu.widest()) + halves + "; " + cpu.isa_list() + "); gemm " +
         gemm_backend_name(backend) + " (" + kernel + syrk + forward + "); fp64 and openblas core " +
         openblas_core_name();
}

}  // namespace expt::kernels
