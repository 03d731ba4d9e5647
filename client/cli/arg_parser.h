// Command-line flags for the `sparsefill` subcommands: `--name value` or `--name=value`, each
// flag declared with its help text, unknown flags and missing values reported by name.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

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

// A subcommand's command line: its name (for messages), usage line, description and flags.
struct CommandSpec {
  const char* name;  // e.g. "run"
  const char* usage;
  const char* description;
  const std::vector<FlagSpec>& flags;
  std::vector<std::string> required;  // flag names that must be given
};

// The preamble every subcommand shares: parses `args`; on --help prints the help and sets
// *exit_code to 0; on a usage error (unknown flag, missing value or required flag) prints
// "sparsefill NAME: ..." and sets *exit_code to 2. Returns the flags only when the command
// should run.
std::optional<ParsedFlags> ParseCommandFlags(const CommandSpec& command,
                                             const std::vector<std::string>& args, int* exit_code);

// Prints "sparsefill NAME: message" to stderr and returns 2 (a usage error).
int UsageError(const char* command_name, absl::string_view message);

}  // namespace sparsefill::cli
