#include "client/cli/arg_parser.h"

#include <algorithm>
#include <cstdio>

#include "absl/strings/str_cat.h"

namespace sparsefill::cli {

std::string ParsedFlags::Get(const std::string& name) const {
  if (auto it = values_.find(name); it != values_.end()) return it->second;
  if (auto it = defaults_.find(name); it != defaults_.end()) return it->second;
  return "";
}

absl::StatusOr<ParsedFlags> ParseFlags(const std::vector<std::string>& args,
                                       const std::vector<FlagSpec>& specs) {
  ParsedFlags parsed;
  for (const FlagSpec& s : specs) {
    if (!s.default_value.empty()) parsed.defaults_[s.name] = s.default_value;
  }
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (arg == "--help" || arg == "-h") {
      parsed.values_["help"] = "true";
      return parsed;
    }
    if (arg.rfind("--", 0) != 0) {
      return absl::InvalidArgumentError(absl::StrCat("unexpected argument '", arg, "'"));
    }
    std::string name = arg.substr(2);
    std::optional<std::string> value;
    if (const size_t eq = name.find('='); eq != std::string::npos) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
    }
    std::replace(name.begin(), name.end(), '_', '-');  // --save_kv works too
    const auto spec =
        std::find_if(specs.begin(), specs.end(), [&](const FlagSpec& s) { return s.name == name; });
    if (spec == specs.end()) {
      return absl::InvalidArgumentError(absl::StrCat("unknown flag --", name, " (see --help)"));
    }
    if (spec->value_name.empty()) {
      parsed.values_[name] = value.value_or("true");
      continue;
    }
    if (!value) {
      if (i + 1 >= args.size()) {
        return absl::InvalidArgumentError(
            absl::StrCat("flag --", name, " needs a value (", spec->value_name, ")"));
      }
      value = args[++i];
    }
    parsed.values_[name] = *value;
  }
  return parsed;
}

std::string FormatHelp(const std::string& usage, const std::string& description,
                       const std::vector<FlagSpec>& specs) {
  std::string out = absl::StrCat("usage: ", usage, "\n\n", description, "\n\nflags:\n");
  size_t width = 0;
  for (const FlagSpec& s : specs) width = std::max(width, s.name.size() + s.value_name.size() + 3);
  for (const FlagSpec& s : specs) {
    std::string left = absl::StrCat("--", s.name, s.value_name.empty() ? "" : " ", s.value_name);
    left.resize(width + 2, ' ');
    absl::StrAppend(&out, "  ", left, s.help);
    if (!s.default_value.empty()) absl::StrAppend(&out, " (default: ", s.default_value, ")");
    absl::StrAppend(&out, "\n");
  }
  return out;
}

int UsageError(const char* command_name, absl::string_view message) {
  std::fprintf(stderr, "sparsefill %s: %s\n", command_name, std::string(message).c_str());
  return 2;
}

std::optional<ParsedFlags> ParseCommandFlags(const CommandSpec& command,
                                             const std::vector<std::string>& args, int* exit_code) {
  absl::StatusOr<ParsedFlags> flags = ParseFlags(args, command.flags);
  if (!flags.ok()) {
    *exit_code = UsageError(command.name, flags.status().message());
    return std::nullopt;
  }
  if (flags->Has("help")) {
    std::printf("%s", FormatHelp(command.usage, command.description, command.flags).c_str());
    *exit_code = 0;
    return std::nullopt;
  }
  for (const std::string& name : command.required) {
    if (flags->Has(name)) continue;
    const auto spec = std::find_if(command.flags.begin(), command.flags.end(),
                                   [&](const FlagSpec& s) { return s.name == name; });
    const std::string value = spec == command.flags.end() ? "" : " " + spec->value_name;
    *exit_code =
        UsageError(command.name, absl::StrCat("--", name, value, " is required (see --help)"));
    return std::nullopt;
  }
  return *std::move(flags);
}

}  // namespace sparsefill::cli
