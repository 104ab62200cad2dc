// kernels::gemm_bf16 (train.precision: bf16) against a plain reference that rounds both operands
// to bf16 and sums in double: all four transpose combinations, odd sizes, padded row strides,
// alpha/beta including the accumulate form (beta = 1) and beta = 0 over NaN in C; the rounding
// itself (ties to even, NaN, denormals); bit-identical results across calls and buffer offsets;
// the CPU check with fake instruction sets. The kernel cases need avx512_bf16 and oneDNN's bf16
// kernels and are skipped (with a warning) without them (e.g. under DNNL_MAX_CPU_ISA=AVX2).
#include <catch2/catch.hpp>
#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "kernels/gemm.hpp"
#include "kernels/processor.hpp"
#include "kernels/sgemm_peak.hpp"
#include "tests/kernels/gradient_check.hpp"

using expt::kernels::round_to_bf16;
using expt::kernels::Trans;

namespace {

struct Shape {
  int M, N, K;
};

bool machine_has_bf16() {
  if (const auto error =
          expt::kernels::bf16_support_error(expt::kernels::cpu_features(), expt::kernels::onednn_isa_name())) {
    WARN("bf16 kernel cases skipped: " << *error);
    SUCCEED("skipped");  // an assertion: the suite runs with -w NoAssertions
    return false;
  }
  return true;
}

// Runs gemm_bf16 with row strides 3 wider than the logical widths and checks every element
// against the double product of the bf16-rounded operands. The products of two bf16 values are
// exact in fp32 (8 + 8 significant bits), so the only error left is fp32 summation in any order:
// within (K + 2) u32 |alpha| |A| |B| + |beta C| (gamma_{K+2}, u32 = 2^-24), Ca per entry.
void check_bf16(Shape s, Trans ta, Trans tb, float alpha, float beta, bool garbage_c) {
  const int pad = 3;
  const int a_rows = ta == Trans::no ? s.M : s.K, a_cols = ta == Trans::no ? s.K : s.M;
  const int b_rows = tb == Trans::no ? s.K : s.N, b_cols = tb == Trans::no ? s.N : s.K;
  const int lda = a_cols + pad, ldb = b_cols + pad, ldc = s.N + pad;
  const auto A = expt::test::random_normal<float>(static_cast<std::size_t>(a_rows) * lda, 11);
  const auto B = expt::test::random_normal<float>(static_cast<std::size_t>(b_rows) * ldb, 12);
  auto C0 = expt::test::random_normal<float>(static_cast<std::size_t>(s.M) * ldc, 13);
  if (garbage_c)
    for (int i = 0; i < s.M; ++i)
      for (int j = 0; j < s.N; ++j) C0[static_cast<std::size_t>(i) * ldc + j] = std::numeric_limits<float>::quiet_NaN();
  auto C = C0;
  expt::kernels::gemm_bf16(ta, tb, s.M, s.N, s.K, alpha, A.data(), lda, B.data(), ldb, beta, C.data(), ldc);

  std::vector<double> Ad(A.size()), Bd(B.size()), Cd(C0.begin(), C0.end());
  for (std::size_t i = 0; i < A.size(); ++i) Ad[i] = round_to_bf16(A[i]);
  for (std::size_t i = 0; i < B.size(); ++i) Bd[i] = round_to_bf16(B[i]);
  std::vector<double> Aa(Ad), Ba(Bd), Ca(Cd);
  for (double& x : Aa) x = std::abs(x);
  for (double& x : Ba) x = std::abs(x);
  for (double& x : Ca) x = garbage_c ? 0.0 : std::abs(x);
  expt::kernels::gemm_reference<double>(ta, tb, s.M, s.N, s.K, alpha, Ad.data(), lda, Bd.data(), ldb, beta, Cd.data(),
                                        ldc);
  expt::kernels::gemm_reference<double>(ta, tb, s.M, s.N, s.K, std::abs(alpha), Aa.data(), lda, Ba.data(), ldb,
                                        std::abs(beta), Ca.data(), ldc);
  const double u = std::numeric_limits<float>::epsilon() / 2;
  for (int i = 0; i < s.M; ++i)
    for (int j = 0; j < ldc; ++j) {
      const std::size_t idx = static_cast<std::size_t>(i) * ldc + j;
      if (j >= s.N) {
        REQUIRE(std::memcmp(&C[idx], &C0[idx], sizeof(float)) == 0);  // padding untouched
      } else {
        INFO("element " << i << "," << j << " alpha " << alpha << " beta " << beta);
        REQUIRE(std::abs(static_cast<double>(C[idx]) - Cd[idx]) <= (s.K + 2) * u * Ca[idx]);
      }
    }
}

const Shape kShapes[] = {{5, 7, 3}, {1, 1, 1}, {17, 33, 65}, {64, 32, 16}, {130, 97, 257}, {3, 300, 2}, {40, 20, 0}};

}  // namespace

TEST_CASE("round_to_bf16 rounds to nearest, ties to even, keeps NaN and flushes denormals", "[gemm][bf16]") {
  const float one = 1.0f, ulp = std::ldexp(1.0f, -7);  // bf16 spacing at 1: 7 fraction bits
  CHECK(round_to_bf16(one) == one);
  CHECK(round_to_bf16(one + ulp / 2) == one);                                // tie, to the even 1.0
  CHECK(round_to_bf16(one + 3 * ulp / 2) == one + 2 * ulp);                  // tie, to the even 1 + 2 ulp
  CHECK(round_to_bf16(one + ulp / 2 + std::ldexp(1.0f, -20)) == one + ulp);  // above the tie: up
  CHECK(round_to_bf16(-(one + ulp / 4)) == -one);
  CHECK(std::isnan(round_to_bf16(std::numeric_limits<float>::quiet_NaN())));
  CHECK(round_to_bf16(std::numeric_limits<float>::denorm_min()) == 0.0f);
  CHECK(round_to_bf16(std::numeric_limits<float>::max()) == std::numeric_limits<float>::infinity());
}

TEST_CASE("gemm_bf16 equals the bf16-rounded reference, every shape, transpose and alpha/beta form", "[gemm][bf16]") {
  if (!machine_has_bf16()) return;
  for (const Shape& s : kShapes)
    for (Trans ta : {Trans::no, Trans::yes})
      for (Trans tb : {Trans::no, Trans::yes}) {
        INFO("M " << s.M << " N " << s.N << " K " << s.K << " ta " << (ta == Trans::yes) << " tb "
                  << (tb == Trans::yes));
        check_bf16(s, ta, tb, 0.7f, 0.0f, false);
        check_bf16(s, ta, tb, 0.7f, 0.0f, true);
        check_bf16(s, ta, tb, -1.3f, 0.4f, false);
        check_bf16(s, ta, tb, 1.0f, 1.0f, false);
        check_bf16(s, ta, tb, 1.0f, 0.0f, true);
      }
}

TEST_CASE("gemm_bf16 rounds its operands: it differs from the fp32 product by about bf16's precision", "[gemm][bf16]") {
  if (!machine_has_bf16()) return;
  const int M = 33, N = 17, K = 65;
  const auto A = expt::test::random_normal<float>(static_cast<std::size_t>(M) * K, 21);
  const auto B = expt::test::random_normal<float>(static_cast<std::size_t>(K) * N, 22);
  std::vector<float> C16(static_cast<std::size_t>(M) * N), C32(C16.size());
  expt::kernels::gemm_bf16(Trans::no, Trans::no, M, N, K, 1.0f, A.data(), K, B.data(), N, 0.0f, C16.data(), N);
  expt::kernels::gemm_reference<float>(Trans::no, Trans::no, M, N, K, 1.0f, A.data(), K, B.data(), N, 0.0f, C32.data(),
                                       N);
  double max_difference = 0;
  for (std::size_t i = 0; i < C16.size(); ++i)
    max_difference = std::max(max_difference, double(std::abs(C16[i] - C32[i])));
  // Operand rounding of relative 2^-9 over K = 65 unit-normal products: differences of order
  // 2^-9 sqrt(2 K) ~ 0.02; fp32 summation alone would stay below 1e-4.
  CHECK(max_difference > 1e-3);
  CHECK(max_difference < 0.2);
}

TEST_CASE("gemm_bf16 gives bit-identical results across repeated calls and buffer offsets", "[gemm][bf16]") {
  if (!machine_has_bf16()) return;
  const Shape shapes[] = {{2048, 128, 128}, {128, 128, 2048}, {37, 341, 29}};
  for (const Shape& s : shapes)
    for (Trans ta : {Trans::no, Trans::yes})
      for (Trans tb : {Trans::no, Trans::yes})
        for (float beta : {0.0f, 1.0f}) {
          INFO("M " << s.M << " N " << s.N << " K " << s.K << " ta " << (ta == Trans::yes) << " tb "
                    << (tb == Trans::yes) << " beta " << beta);
          const std::size_t a_size = static_cast<std::size_t>(s.M) * s.K, b_size = static_cast<std::size_t>(s.K) * s.N,
                            c_size = static_cast<std::size_t>(s.M) * s.N;
          const int lda = ta == Trans::no ? s.K : s.M, ldb = tb == Trans::no ? s.N : s.K;
          const auto A = expt::test::random_normal<float>(a_size, 31);
          const auto B = expt::test::random_normal<float>(b_size, 32);
          const auto C0 = expt::test::random_normal<float>(c_size, 33);
          std::vector<float> first;
          for (std::size_t offset : {0, 1, 3, 16}) {
            std::vector<float> a(a_size + offset), b(b_size + offset), c(c_size + offset);
            std::copy(A.begin(), A.end(), a.begin() + offset);
            std::copy(B.begin(), B.end(), b.begin() + offset);
            std::copy(C0.begin(), C0.end(), c.begin() + offset);
            expt::kernels::gemm_bf16(ta, tb, s.M, s.N, s.K, 1.0f, a.data() + offset, lda, b.data() + offset, ldb, beta,
                                     c.data() + offset, s.N);
            std::vector<float> result(c.begin() + offset, c.end());
            if (first.empty())
              first = result;
            else
              REQUIRE(std::memcmp(first.data(), result.data(), c_size * sizeof(float)) == 0);
          }
        }
}

TEST_CASE("the bf16 limit probe computes correct products and a rate", "[gemm][bf16]") {
  if (!machine_has_bf16()) return;
  CHECK(expt::kernels::bf16_gemm_correct());
  const double rate = expt::kernels::bf16_gemm_rate_gflops({64, 96}, 2);
  CHECK(rate > 0);
  CHECK(std::isfinite(rate));
}

TEST_CASE("gemm_in runs fp32 on gemm<float> bit for bit and bf16 on gemm_bf16", "[gemm][bf16]") {
  const int M = 19, N = 23, K = 31;
  const auto A = expt::test::random_normal<float>(static_cast<std::size_t>(M) * K, 41);
  const auto B = expt::test::random_normal<float>(static_cast<std::size_t>(N) * K, 42);
  std::vector<float> expected(static_cast<std::size_t>(M) * N), got(expected.size());
  expt::kernels::gemm<float>(Trans::no, Trans::yes, M, N, K, 1.0f, A.data(), K, B.data(), K, 0.0f, expected.data(), N);
  expt::kernels::gemm_in(expt::kernels::Precision::fp32, Trans::no, Trans::yes, M, N, K, 1.0f, A.data(), K, B.data(), K,
                         0.0f, got.data(), N);
  CHECK(std::memcmp(expected.data(), got.data(), got.size() * sizeof(float)) == 0);
  if (!machine_has_bf16()) return;
  expt::kernels::gemm_bf16(Trans::no, Trans::yes, M, N, K, 1.0f, A.data(), K, B.data(), K, 0.0f, expected.data(), N);
  expt::kernels::gemm_in(expt::kernels::Precision::bf16, Trans::no, Trans::yes, M, N, K, 1.0f, A.data(), K, B.data(), K,
                         0.0f, got.data(), N);
  CHECK(std::memcmp(expected.data(), got.data(), got.size() * sizeof(float)) == 0);
}

TEST_CASE("precision names parse, and an unknown one is refused with the accepted values", "[gemm][bf16]") {
  using expt::kernels::Precision;
  CHECK(expt::kernels::parse_precision("fp32") == Precision::fp32);
  CHECK(expt::kernels::parse_precision("bf16") == Precision::bf16);
  CHECK(std::string(expt::kernels::precision_name(Precision::bf16)) == "bf16");
  CHECK_THROWS_WITH(expt::kernels::parse_precision("fp16"), Catch::Contains("fp32 or bf16"));
}

TEST_CASE("bf16 mode is refused on a CPU without bf16 instructions, naming the CPU and the fix", "[gemm][bf16]") {
  expt::kernels::CpuFeatures cpu;
  cpu.model = "Test CPU 9000";
  cpu.isa = {"sse2", "avx", "fma", "avx2", "avx512f", "avx512bw", "avx512vl"};  // Skylake-X: no bf16
  const auto error = expt::kernels::bf16_support_error(cpu, "avx512_core");
  REQUIRE(error.has_value());
  CHECK_THAT(*error, Catch::Contains("train.precision: bf16") && Catch::Contains("avx512_bf16") &&
                         Catch::Contains("Test CPU 9000") && Catch::Contains("avx512f") &&
                         Catch::Contains("train.precision: fp32"));
  cpu.isa.push_back("avx512_bf16");
  CHECK_FALSE(expt::kernels::bf16_support_error(cpu, "avx512_core_bf16").has_value());
  cpu.isa.push_back("amx_tile");
  cpu.isa.push_back("amx_bf16");
  CHECK_FALSE(expt::kernels::bf16_support_error(cpu, "avx512_core_amx").has_value());
  // A bf16 CPU with oneDNN limited below its bf16 kernels (DNNL_MAX_CPU_ISA=AVX2): refused too.
  const auto limited = expt::kernels::bf16_support_error(cpu, "avx2");
  REQUIRE(limited.has_value());
  CHECK_THAT(*limited, Catch::Contains("'avx2'") && Catch::Contains("DNNL_MAX_CPU_ISA") &&
                           Catch::Contains("train.precision: fp32"));
}
