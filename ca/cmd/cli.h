// ca/cli.h — the istio-ca command line: one binary, one subcommand per file.
//
// Each subcommand registers itself on the root CLI11 app with a Register* function and sets
// ctx.exit_code from its callback. Flag errors are one line on stderr and exit 2.
#pragma once

#include <CLI/CLI.hpp>

namespace istioca::ca {

struct CommandContext {
  int exit_code = 0;
};

void RegisterVersion(CLI::App& app, CommandContext& ctx);
void RegisterInspect(CLI::App& app, CommandContext& ctx);
void RegisterServe(CLI::App& app, CommandContext& ctx);      // ca/serve_cmd.cc
void RegisterProbe(CLI::App& app, CommandContext& ctx);      // ca/probe_cmd.cc
void RegisterNodeAgent(CLI::App& app, CommandContext& ctx);  // ca/node_agent_cmd.cc
void RegisterRotate(CLI::App& app, CommandContext& ctx);     // ca/cmd/rotate.cc

int RunCli(int argc, char** argv);

}  // namespace istioca::ca
