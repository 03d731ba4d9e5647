// Command-line flags for the `sparsefill` subcommands: `--name value` or `--name=value`, each
// flag declared with its help text, unknown flags and missing values reported by name.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace sparsefill::cli {

struct FlagSpec {
  std::string name;        // without the dashes, e.g. "save-kv"
  std::string value_name;  // e.g. "FILE"; empty for a boolean switch
  std::string help;
  std::string default_value;  // shown in --help; empty for none
};

class ParsedFlags {
 public:
  bool Has(const std::string& name) const { return values_.contains(name); }
  // The value given, else the declared default (empty when none).
  std::string Get(const std::string& name) const;
  std::map<std::string, std::string> values_;
  std::map<std::string, std::string> defaults_;
};

// Parses args (after the subcommand). `--help`/`-h` yields a ParsedFlags with "help" set.
absl::StatusOr<ParsedFlags> ParseFlags(const std::vector<std::string>& args,
                                       const std::vector<FlagSpec>& specs);

// The help text: usage line, description, then one aligned line per flag.
std::string FormatHelp(const std::string& usage, const std::string& description,
                       const std::vector<FlagSpec>& specs);

}  // namespace sparsefill::cli
