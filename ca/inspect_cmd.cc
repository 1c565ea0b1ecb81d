#include "ca/cli.h"

namespace istioca::ca {
void RegisterInspect(CLI::App& app, CommandContext& ctx) {
  app.add_subcommand("inspect", "Inspect certificates (not yet implemented)");
}
}  // namespace istioca::ca
