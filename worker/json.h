// A small JSON reader for configuration files (HF config.json, safetensors headers, pattern
// configs). Full RFC 8259 syntax; numbers are kept as double plus the exact integer when the text
// is one. Not for untrusted multi-megabyte documents on a hot path.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace sparsefill::worker {

class JsonValue {
 public:
  using Array = std::vector<JsonValue>;
  // std::map keeps keys sorted, so serialisation is deterministic.
  using Object = std::map<std::string, JsonValue, std::less<>>;

  JsonValue() = default;  // null
  static JsonValue Bool(bool b);
  static JsonValue Number(double d);
  static JsonValue Integer(int64_t i);
  static JsonValue String(std::string s);
  static JsonValue MakeArray(Array a);
  static JsonValue MakeObject(Object o);

  bool is_null() const { return std::holds_alternative<std::monostate>(value_); }
  bool is_bool() const { return std::holds_alternative<bool>(value_); }
  bool is_number() const { return std::holds_alternative<NumberValue>(value_); }
  bool is_string() const { return std::holds_alternative<std::string>(value_); }
  bool is_array() const { return std::holds_alternative<Array>(value_); }
  bool is_object() const { return std::holds_alternative<Object>(value_); }
  // True for numbers written without fraction or exponent that fit int64.
  bool is_integer() const {
    return is_number() && std::get<NumberValue>(value_).integer.has_value();
  }

  bool as_bool() const { return std::get<bool>(value_); }
  double as_double() const { return std::get<NumberValue>(value_).number; }
  int64_t as_int() const { return *std::get<NumberValue>(value_).integer; }
  const std::string& as_string() const { return std::get<std::string>(value_); }
  const Array& as_array() const { return std::get<Array>(value_); }
  const Object& as_object() const { return std::get<Object>(value_); }

  // Object member or nullptr (also when this is not an object).
  const JsonValue* Find(absl::string_view key) const;

  // "null", "bool", "number", "string", "array", "object": for error messages.
  const char* TypeName() const;

  // Compact serialisation.
  std::string Serialize() const;

 private:
  struct NumberValue {
    double number = 0;
    std::optional<int64_t> integer;
  };
  std::variant<std::monostate, bool, NumberValue, std::string, Array, Object> value_;
};

// Parses a complete JSON document; errors give the line and column.
absl::StatusOr<JsonValue> ParseJson(absl::string_view text);

}  // namespace sparsefill::worker
