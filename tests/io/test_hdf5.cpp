// The RAII layer over the HDF5 C API: errors become exceptions (and HDF5 prints nothing), and
// attributes / datasets / compound types round-trip exactly.
#include <fcntl.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cmath>
#include <limits>

#include "core/io/hdf5.hpp"
#include "io_test_util.hpp"

namespace h5 = expt::io::h5;
using expt::io::test::bits;
using expt::io::test::read_whole_file;
using expt::io::test::TempDir;
using expt::io::test::write_whole_file;

namespace {
// Runs fn with stderr redirected to a file and returns what was written there.
template <class Fn>
std::string captured_stderr(const TempDir& dir, Fn fn) {
  const auto path = dir / "stderr.txt";
  std::fflush(stderr);
  const int saved = dup(2);
  const int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  dup2(fd, 2);
  close(fd);
  try {
    fn();
  } catch (...) {
    std::fflush(stderr);
    dup2(saved, 2);
    close(saved);
    throw;
  }
  std::fflush(stderr);
  dup2(saved, 2);
  close(saved);
  return read_whole_file(path);
}
}  // namespace

TEST_CASE("opening a file that is not HDF5 throws with the path, and HDF5 prints nothing", "[hdf5]") {
  TempDir dir;
  const auto garbage = dir / "garbage.h5";
  write_whole_file(garbage, std::string(4096, 'z'));
  std::string message;
  const std::string printed = captured_stderr(dir, [&] {
    try {
      h5::open_file(garbage);
    } catch (const std::runtime_error& e) {
      message = e.what();
    }
  });
  INFO(message);
  REQUIRE(message.find(garbage.string()) != std::string::npos);
  REQUIRE(message.find("open file") != std::string::npos);
  REQUIRE(printed.empty());
  REQUIRE_THROWS_AS(h5::open_file(dir / "missing.h5"), std::runtime_error);
}

TEST_CASE("create_file exclusive refuses an existing file", "[hdf5]") {
  TempDir dir;
  const auto path = dir / "a.h5";
  h5::create_file(path, true).close();
  REQUIRE_THROWS_AS(h5::create_file(path, true), std::runtime_error);
  h5::create_file(path, false).close();  // truncating is allowed
}

TEST_CASE("attributes round-trip exactly and are type-checked", "[hdf5]") {
  TempDir dir;
  const auto path = dir / "attrs.h5";
  const std::string utf8 = "lr \xce\xb7 = 1e-25";
  {
    h5::File f = h5::create_file(path, true);
    h5::Group g = h5::create_group(f, "a/b");
    h5::write_attribute(g, "i_min", std::numeric_limits<std::int64_t>::min());
    h5::write_attribute(g, "i_max", std::numeric_limits<std::int64_t>::max());
    h5::write_attribute(g, "tiny", 1e-25);
    h5::write_attribute(g, "inf", std::numeric_limits<double>::infinity());
    h5::write_attribute(g, "text", std::string_view(utf8));
    h5::write_attribute(g, "empty", std::string_view(""));
    h5::write_attribute(g, "replaced", std::int64_t{1});
    h5::write_attribute(g, "replaced", 2.5);  // an existing attribute is replaced, even by another type
    const std::vector<std::int64_t> lens = {24, 12, 6};
    h5::write_attribute(g, "lens", std::span<const std::int64_t>(lens));
    g.close();
    f.close();
  }
  h5::File f = h5::open_file(path);
  REQUIRE(h5::link_exists(f, "a/b"));
  REQUIRE_FALSE(h5::link_exists(f, "a/c"));
  REQUIRE_FALSE(h5::link_exists(f, "x/y/z"));
  h5::Group g = h5::open_group(f, "a/b");
  REQUIRE(h5::read_int_attribute(g, "i_min") == std::numeric_limits<std::int64_t>::min());
  REQUIRE(h5::read_int_attribute(g, "i_max") == std::numeric_limits<std::int64_t>::max());
  REQUIRE(bits(h5::read_double_attribute(g, "tiny")) == bits(1e-25));
  REQUIRE(h5::read_double_attribute(g, "inf") == std::numeric_limits<double>::infinity());
  REQUIRE(h5::read_string_attribute(g, "text") == utf8);
  REQUIRE(h5::read_string_attribute(g, "empty").empty());
  REQUIRE(h5::read_double_attribute(g, "replaced") == 2.5);
  REQUIRE(h5::read_int_array_attribute(g, "lens") == std::vector<std::int64_t>{24, 12, 6});
  REQUIRE(h5::attribute_names(g) ==
          std::vector<std::string>{"empty", "i_max", "i_min", "inf", "lens", "replaced", "text", "tiny"});
  REQUIRE(h5::attribute_class(g, "text") == h5::AttributeClass::string);
  REQUIRE(h5::attribute_class(g, "tiny") == h5::AttributeClass::floating);
  REQUIRE(h5::attribute_class(g, "i_min") == h5::AttributeClass::integer);
  REQUIRE_THROWS_AS(h5::read_int_attribute(g, "text"), std::runtime_error);
  REQUIRE_THROWS_AS(h5::read_string_attribute(g, "tiny"), std::runtime_error);
  REQUIRE_THROWS_AS(h5::read_int_attribute(g, "lens"), std::runtime_error);  // not a scalar
  try {
    h5::read_int_attribute(g, "missing");
    FAIL("no exception for a missing attribute");
  } catch (const std::runtime_error& e) {
    REQUIRE(std::string(e.what()).find(path.string() + ":/a/b@missing") != std::string::npos);
  }
}

TEST_CASE("string and numeric datasets round-trip exactly", "[hdf5]") {
  TempDir dir;
  const auto path = dir / "data.h5";
  const std::string with_nuls = std::string("a\0b", 3) + std::string(2, '\0');
  const std::vector<double> m = {1.0, -0.0, std::numeric_limits<double>::denorm_min(), 3.5, -1e300, 7.0};
  {
    h5::File f = h5::create_file(path, true);
    h5::write_string_dataset(f, "config", "seed: 7\nlr: 1.0e-03\n");
    h5::write_string_dataset(f, "nuls", with_nuls);
    h5::write_string_dataset(f, "empty", "");
    h5::write_array<double>(f, "g/m", m, {2, 3}).close();
    h5::write_array<std::int64_t>(f, "g/none", std::span<const std::int64_t>(), {0}).close();
    f.close();
  }
  h5::File f = h5::open_file(path);
  REQUIRE(h5::read_string_dataset(f, "config") == "seed: 7\nlr: 1.0e-03\n");
  REQUIRE(h5::read_string_dataset(f, "nuls") == with_nuls);
  REQUIRE(h5::read_string_dataset(f, "empty").empty());
  std::vector<hsize_t> dims;
  const auto back = h5::read_array<double>(h5::open_dataset(f, "g/m"), &dims);
  REQUIRE(dims == std::vector<hsize_t>{2, 3});
  REQUIRE(back.size() == m.size());
  for (std::size_t i = 0; i < m.size(); ++i) REQUIRE(bits(back[i]) == bits(m[i]));
  REQUIRE(h5::read_array<std::int64_t>(h5::open_dataset(f, "g/none"), &dims).empty());
  REQUIRE(dims == std::vector<hsize_t>{0});
  REQUIRE(h5::member_names(h5::open_group(f, "g")) == std::vector<std::string>{"m", "none"});
  REQUIRE(h5::object_kind(f, "g") == h5::ObjectKind::group);
  REQUIRE(h5::object_kind(f, "g/m") == h5::ObjectKind::dataset);
  REQUIRE_THROWS_AS(h5::read_array<std::int64_t>(h5::open_dataset(f, "g/m"), nullptr), std::runtime_error);
  REQUIRE_THROWS_AS(h5::write_array<double>(f, "bad", m, {4, 2}), std::invalid_argument);
}

TEST_CASE("compound row datasets append and read rows, field names kept", "[hdf5]") {
  TempDir dir;
  const auto path = dir / "rows.h5";
  const std::vector<h5::CompoundField> fields = {{"step", H5T_NATIVE_INT64}, {"loss@32", H5T_NATIVE_FLOAT}};
  std::vector<std::size_t> offsets;
  h5::Datatype type = h5::make_compound(fields, &offsets);
  REQUIRE(offsets == std::vector<std::size_t>{0, 8});
  REQUIRE(H5Tget_size(type.id()) == 12);  // packed: no padding after the float
  // 10 rows appended as 3 + 7, across a chunk boundary (chunks of 4 rows).
  unsigned char rows[10 * 12];
  for (int i = 0; i < 10; ++i) {
    const std::int64_t step = 100 + i;
    const float loss = 0.5f * static_cast<float>(i);
    std::memcpy(rows + 12 * i, &step, 8);
    std::memcpy(rows + 12 * i + 8, &loss, 4);
  }
  {
    h5::File f = h5::create_file(path, true);
    h5::Dataset d = h5::create_row_dataset(f, "metrics/x", type.id(), {}, 4);
    h5::append_rows(d, type.id(), rows, 3);
    h5::append_rows(d, type.id(), rows + 3 * 12, 7);
    d.close();
    f.close();
  }
  h5::File f = h5::open_file(path);
  h5::Dataset d = h5::open_dataset(f, "metrics/x");
  REQUIRE(h5::compound_field_names(d) == std::vector<std::string>{"step", "loss@32"});
  REQUIRE(h5::dataset_dims(d) == std::vector<hsize_t>{10});
  unsigned char back[10 * 12];
  h5::read_rows(d, type.id(), back, 10);
  REQUIRE(std::memcmp(rows, back, sizeof rows) == 0);
  REQUIRE_THROWS_AS(h5::read_rows(d, type.id(), back, 11), std::runtime_error);
}

TEST_CASE("closing a file with an object still open is an error, not a silent deferral", "[hdf5]") {
  TempDir dir;
  h5::File f = h5::create_file(dir / "semi.h5", true);
  h5::Group g = h5::create_group(f, "g");
  REQUIRE_THROWS_AS(f.close(), std::runtime_error);
  g.close();
}

TEST_CASE("library_version reports the HDF5 in use", "[hdf5]") {
  REQUIRE(h5::library_version() ==
          std::to_string(H5_VERS_MAJOR) + "." + std::to_string(H5_VERS_MINOR) + "." + std::to_string(H5_VERS_RELEASE));
}
