// Placeholder until the `serve` subcommand lands; replaced by its owner.
#include <iostream>

#include "ca/cli.h"

namespace istioca::ca {
void RegisterServe(CLI::App& app, CommandContext& ctx) {
  CLI::App* cmd = app.add_subcommand("serve", "(not yet available)");
  cmd->allow_extras();
  cmd->callback([&ctx] {
    std::cerr << "istio-ca: serve is not available in this build yet\n";
    ctx.exit_code = 2;
  });
}
}  // namespace istioca::ca
