// base/log.h — one named spdlog logger per component, all writing to one stderr sink.
//
// Messages are fixed text with key=value fields: log->info("issued cert ns={} sa={}", ns, sa).
// --log_as_json switches every logger to one JSON object per line. Never log a private key or
// a token; name certificates by serial or fingerprint.
#pragma once

#include <spdlog/spdlog.h>

#include <memory>
#include <string>
#include <string_view>

#include "base/status.h"

namespace istioca {

// level: debug | info | warn | error | none. Applies to existing and future loggers.
Status ConfigureLogging(std::string_view level, bool json);

// The logger for a component ("controller", "grpc", "k8s", ...), created on first use.
std::shared_ptr<spdlog::logger> Logger(const std::string& component);

}  // namespace istioca
