// Placeholder until the `probe` subcommand lands; replaced by its owner.
#include <iostream>

#include "ca/cli.h"

namespace istioca::ca {
void RegisterProbe(CLI::App& app, CommandContext& ctx) {
  CLI::App* cmd = app.add_subcommand("probe", "(not yet available)");
  cmd->allow_extras();
  cmd->callback([&ctx] {
    std::cerr << "istio-ca: probe is not available in this build yet\n";
    ctx.exit_code = 2;
  });
}
}  // namespace istioca::ca
