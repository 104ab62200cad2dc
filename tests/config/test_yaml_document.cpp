// The YAML-with-positions layer (yaml_document.hpp), independent of the trial schema.
#include <catch2/catch.hpp>
#include <cmath>

#include "core/config/schema.hpp"
#include "core/config/yaml_document.hpp"

using expt::config::apply_override;
using expt::config::ErrorList;
using expt::config::load_yaml_document;
using expt::config::parse_override;
using expt::config::YamlNode;

namespace {

YamlNode load(const std::string& text, ErrorList& errors) {
  auto root = load_yaml_document(text, "doc.yaml", 0, errors);
  REQUIRE(root);
  return *root;
}

const YamlNode& at(const YamlNode& map, const std::string& key) {
  const YamlNode* n = map.find(key);
  REQUIRE(n != nullptr);
  return *n;
}

}  // namespace

TEST_CASE("nodes and keys carry 1-based lines and columns", "[config][yaml]") {
  ErrorList errors;
  const YamlNode root = load(
      "a: 1\n"
      "b:\n"
      "  c: \"x\"\n"
      "  d: [10, 20]\n"
      "  e: {f: g}\n",
      errors);
  CHECK(errors.empty());
  REQUIRE(root.kind == YamlNode::Kind::mapping);
  CHECK(root.entries[0].key_pos.line == 1);
  CHECK(root.entries[0].key_pos.col == 1);
  CHECK(at(root, "a").pos.col == 4);
  const YamlNode& b = at(root, "b");
  CHECK(b.entries[0].key_pos.line == 3);
  CHECK(b.entries[0].key_pos.col == 3);
  CHECK(at(b, "c").pos.col == 6);  // the opening quote
  const YamlNode& d = at(b, "d");
  REQUIRE(d.items.size() == 2);
  CHECK(d.items[1].pos.line == 4);
  CHECK(d.items[1].pos.col == 11);
  const YamlNode& e = at(b, "e");
  CHECK(e.entries[0].key_pos.col == 7);
  CHECK(at(e, "f").pos.col == 10);
  CHECK(at(e, "f").pos.source == "doc.yaml");
}

TEST_CASE("quoted and !!str scalars are strings, plain and core-tagged ones resolve by text", "[config][yaml]") {
  ErrorList errors;
  const YamlNode root = load("p: 3e-4\nq: \"3e-4\"\nr: '5'\ns: !!str 5\nt: !!float 5\nu: ~\nv:\n", errors);
  CHECK(at(root, "p").plain);
  CHECK_FALSE(at(root, "q").plain);
  CHECK_FALSE(at(root, "r").plain);
  CHECK_FALSE(at(root, "s").plain);
  CHECK(at(root, "t").plain);
  CHECK(at(root, "u").kind == YamlNode::Kind::null);
  // `v:` has no value: the null points at its key, not past the end of the text.
  CHECK(at(root, "v").kind == YamlNode::Kind::null);
  CHECK(at(root, "v").pos.line == 7);
  CHECK(at(root, "v").pos.col == 1);
}

TEST_CASE("aliases copy the anchored node", "[config][yaml]") {
  ErrorList errors;
  const YamlNode root = load("base: &b {x: 1, y: [2, 3]}\nother: *b\n", errors);
  CHECK(errors.empty());
  const YamlNode& other = at(root, "other");
  REQUIRE(other.kind == YamlNode::Kind::mapping);
  CHECK(at(other, "x").text == "1");
  CHECK(at(other, "y").items.size() == 2);
  CHECK(other.pos.line == 2);
}

TEST_CASE("duplicate keys are reported with their key paths, in sequences too", "[config][yaml]") {
  ErrorList errors;
  const YamlNode root = load("a:\n  b:\n    c: 1\n    c: 2\n  b: 3\nlist:\n  - {k: 1, k: 2}\na: 4\n", errors);
  const auto list = errors.sorted();
  REQUIRE(list.size() == 4);
  CHECK(list[0].key_path == "a.b.c");
  CHECK(list[0].line == 4);
  CHECK(list[1].key_path == "a.b");
  CHECK(list[1].line == 5);
  CHECK(list[2].key_path == "list[0].k");
  CHECK(list[2].line == 7);
  CHECK(list[2].col == 12);
  CHECK(list[3].key_path == "a");
  CHECK(list[3].line == 8);
  // The first occurrence is kept.
  CHECK(at(at(at(root, "a"), "b"), "c").text == "1");
}

TEST_CASE("a syntax error gives no document and one positioned error", "[config][yaml]") {
  ErrorList errors;
  CHECK_FALSE(load_yaml_document("a: [1, 2\n", "doc.yaml", 0, errors));
  const auto list = errors.sorted();
  REQUIRE(list.size() == 1);
  CHECK(list[0].line >= 1);
  CHECK_THAT(list[0].message, Catch::Matchers::StartsWith("YAML syntax error: "));
}

TEST_CASE("overrides merge mappings key by key and replace everything else", "[config][yaml]") {
  ErrorList errors;
  YamlNode root = load("m: {a: 1, b: {c: 2, d: 3}}\nl: [1, 2]\ns: x\n", errors);
  for (const std::string text : {"m.b={c: 20}", "l=[9]", "s.t=5", "new.deep.key=7"}) {
    auto ov = parse_override(text, 1, errors);
    REQUIRE(ov);
    apply_override(root, *ov);
  }
  CHECK(errors.empty());
  const YamlNode& b = at(at(root, "m"), "b");
  CHECK(at(b, "c").text == "20");
  CHECK(at(b, "c").pos.source == "--set");
  CHECK(at(b, "c").pos.col == 9);        // "m.b={c: 20}": the value 20 starts in column 9
  CHECK(b.entries[0].key_pos.col == 6);  // the key c, taken over by the override
  CHECK(at(b, "d").text == "3");         // kept from the file
  CHECK(at(at(root, "m"), "a").text == "1");
  CHECK(at(root, "l").items.size() == 1);
  CHECK(at(at(root, "s"), "t").text == "5");  // a scalar replaced by a mapping
  CHECK(at(at(at(root, "new"), "deep"), "key").text == "7");
}

TEST_CASE("scalar resolution follows the YAML 1.2 core schema (decimal integers)", "[config][yaml]") {
  using namespace expt::config;
  for (const char* s : {"0", "7", "-3", "+12", "007"}) CHECK(is_integer_text(s));
  for (const char* s : {"", "1.0", "1e3", "0x1F", "1_000", "--1", "+"}) CHECK_FALSE(is_integer_text(s));
  for (const char* s : {"1.5", "1.", ".5", "-2.5e-3", "1e3", "+1E+3", "5", ".inf", "-.Inf", ".NaN"})
    CHECK(is_float_text(s));
  for (const char* s : {"", ".", "e3", "1e", "1.5.2", "inf", "nan", "0x1p3", "1,5", "- 1"})
    CHECK_FALSE(is_float_text(s));
  CHECK(bool_value("True") == true);
  CHECK(bool_value("FALSE") == false);
  CHECK_FALSE(bool_value("yes"));
  CHECK(integer_value("9223372036854775807") == std::int64_t{9223372036854775807});
  CHECK_FALSE(integer_value("9223372036854775808"));
  CHECK(float_value("+2.5e-1") == 0.25);
  CHECK(float_value(".5") == 0.5);
  CHECK(std::isinf(*float_value("-.inf")));
  CHECK_FALSE(float_value("1e400"));
}

TEST_CASE("suggestions: close typos only", "[config][yaml]") {
  using expt::config::schema::closest_match;
  const std::vector<std::string> keys = {"steps", "batch_size", "ranks", "eval_every", "lr", "seed", "warmup"};
  CHECK(closest_match("step", keys) == "steps");
  CHECK(closest_match("batchsize", keys) == "batch_size");
  CHECK(closest_match("wramup", keys) == "warmup");
  CHECK(closest_match("Seed", keys) == "seed");
  CHECK(closest_match("lrr", keys) == "lr");
  CHECK_FALSE(closest_match("x", keys));
  CHECK_FALSE(closest_match("learning_rate", keys));
}
