// Canonical YAML scalars: the one spelling of each value that the resolved config uses, so that
// equal configs are equal texts (and hash equal) and every reader gets the same values back.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace expt::config {

// Scientific notation with a dot and a signed exponent of at least two digits, e.g. 1.0e-03,
// 2.5e+00, 0.0e+00, 3.3333333333333331e-01: the mantissa is the shortest that reads back as the
// same double, so parsing the text gives the value bit for bit. YAML 1.1 readers (PyYAML) need the
// dot and the exponent sign to see a float. Non-finite values are .nan, .inf, -.inf.
std::string format_double(double x);

// Plain when that reads back as the same string under YAML 1.1 and 1.2 (letters, digits and
// `_./+-`, not starting like a number or an indicator, not a null/boolean word such as `yes`);
// otherwise double-quoted with escapes.
std::string format_string(std::string_view s);

// 64-bit FNV-1a of the bytes, as 16 lowercase hex digits (same on every platform and run).
std::string fnv1a64_hex(std::string_view bytes);

}  // namespace expt::config
