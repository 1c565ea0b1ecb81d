#include "ca/cmd/cli.h"

#include <csignal>
#include <iostream>
#include <string>
#include <vector>

#include "base/version.h"

namespace istioca::ca {

void RegisterVersion(CLI::App& app, CommandContext& ctx) {
  CLI::App* cmd = app.add_subcommand("version", "Print build information");
  static bool short_form = false;
  cmd->add_flag("-s,--short", short_form, "Print only the version number");
  cmd->callback([&ctx] {
    std::cout << (short_form ? VersionShort() : VersionLong()) << "\n";
    ctx.exit_code = 0;
  });
}

int RunCli(int argc, char** argv) {
  // A peer that closes a socket must be an error return, not a process kill.
  std::signal(SIGPIPE, SIG_IGN);
  CLI::App app(
      "istio-ca: a certificate authority for service meshes (SPIFFE identities for "
      "Kubernetes service accounts)",
      "istio-ca");
  app.require_subcommand(1, 1);
  app.set_help_all_flag("--help-all", "Show help for every subcommand");
  CommandContext ctx;
  RegisterServe(app, ctx);
  RegisterInspect(app, ctx);
  RegisterNodeAgent(app, ctx);
  RegisterProbe(app, ctx);
  RegisterRotate(app, ctx);
  RegisterVersion(app, ctx);

  std::vector<std::string> args;
  for (int i = argc - 1; i >= 1; --i) args.emplace_back(argv[i]);  // CLI11 wants them reversed
  // The bare `istio-ca [flags]` form runs the daemon, as Istio's istio_ca did.
  bool has_serve = false;
  for (const CLI::App* sub : app.get_subcommands({})) has_serve |= sub->get_name() == "serve";
  if (has_serve && (args.empty() || (args.back().rfind("-", 0) == 0 && args.back() != "-h" &&
                                     args.back() != "--help" && args.back() != "--help-all"))) {
    args.emplace_back("serve");
  }
  try {
    app.parse(args);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::string what = e.what();
    if (what.empty()) what = "invalid command line";
    std::cerr << "istio-ca: " << what << " (see istio-ca --help)\n";
    return 2;
  }
  return ctx.exit_code;
}

}  // namespace istioca::ca
