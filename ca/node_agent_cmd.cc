// Placeholder until the `node-agent` subcommand lands; replaced by its owner.
#include <iostream>

#include "ca/cli.h"

namespace istioca::ca {
void RegisterNodeAgent(CLI::App& app, CommandContext& ctx) {
  CLI::App* cmd = app.add_subcommand("node-agent", "(not yet available)");
  cmd->allow_extras();
  cmd->callback([&ctx] {
    std::cerr << "istio-ca: node-agent is not available in this build yet\n";
    ctx.exit_code = 2;
  });
}
}  // namespace istioca::ca
