// `istio-ca probe --probe-path F --interval D`: the liveness exec probe. Exit 0 iff F exists and
// was modified within D (plus 10 ms), as Istio's `istio_ca probe`; otherwise 1 with the reason.
#include <iostream>
#include <memory>

#include "ca/cmd/cli.h"
#include "ca/daemon/liveness.h"

namespace istioca::ca {

void RegisterProbe(CLI::App& app, CommandContext& ctx) {
  struct Flags {
    std::string path;
    std::string interval;
  };
  auto f = std::make_shared<Flags>();
  CLI::App* cmd = app.add_subcommand(
      "probe", "Liveness probe: exit 0 iff the probe file was touched within the interval");
  cmd->add_option("--probe-path", f->path, "The file the daemon touches (--liveness-probe-path)")
      ->required();
  cmd->add_option("--interval", f->interval, "Maximum age of the file, e.g. 125s")->required();
  cmd->callback([f, &ctx] {
    auto d = ParseDuration(f->interval);
    if (!d.ok() || *d <= Duration::zero()) {
      std::cerr << "istio-ca: --interval: " << (d.ok() ? "must be positive" : d.status().message())
                << "\n";
      ctx.exit_code = 2;
      return;
    }
    Status s = CheckProbeFile(f->path, *d, SystemClock::Get().Now());
    if (!s.ok()) {
      std::cerr << "istio-ca probe: " << s.message() << "\n";
      ctx.exit_code = 1;
      return;
    }
    std::cout << "OK\n";
    ctx.exit_code = 0;
  });
}

}  // namespace istioca::ca
