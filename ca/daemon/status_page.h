// ca/daemon/status_page.h — the monitoring port's status page (`/`) and `/status.json`.
//
// Promises: RenderStatusHtml and RenderStatusJson are pure functions of a StatusData snapshot
// (including its `now`), so a test renders any state without a daemon. The HTML is one
// self-contained document: inline CSS and inline SVG, no script and no external asset (clusters
// are often air-gapped), readable at 375 px wide. Every string that came from outside (service
// account names, subjects, event fields) is HTML-escaped. Certificates are listed soonest
// expiry first; the chart draws one mark per certificate up to kMaxChartMarks and beyond that
// one bar per time bucket (kChartBuckets), so a page with thousands of certificates stays small.
//
// Does not promise: that the snapshot is consistent across its parts (the daemon reads the
// authority, the trust manager and the controller one after the other).
#pragma once

#include <cstddef>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "base/time.h"

namespace istioca::ca {

inline constexpr size_t kMaxChartMarks = 500;
inline constexpr size_t kChartBuckets = 60;
// Rows of the certificate table in the HTML (the JSON lists every certificate).
inline constexpr size_t kMaxTableRows = 1000;
// Events of each section shown in the HTML, newest first.
inline constexpr size_t kMaxEventRows = 50;

struct StatusCertificate {  // a CA certificate: a root or the signer
  std::string subject;
  std::string skid;  // hex with colons
  std::string serial_hex;
  TimePoint not_after{};
  bool anchors_signer = false;  // roots only: the active signer chains to this root
  bool leaving = false;         // roots only: leaves the bundle after the rotation in progress
  std::optional<TimePoint> retire_after;  // roots only
};

struct StatusTrust {
  std::string stage;  // "stable", "prepared", "active"
  uint64_t bundle_generation = 0;
  std::string action;  // what the lifecycle would do now ("none", "publish-bundle", ...)
  std::string gate;    // what the next transition waits for ("none", "distribution", ...)
  std::optional<TimePoint> next_transition;
  size_t objects_updated = 0;
  size_t objects_total = 0;
  std::optional<TimePoint> outstanding_not_after;
  std::optional<TimePoint> unsafe_at;
};

struct StatusWorkload {
  std::string name;  // "ns/sa"
  std::string serial_hex;
  TimePoint not_before{};
  TimePoint not_after{};
  TimePoint refresh_at{};
};

struct StatusEvent {
  TimePoint time{};
  std::string type;
  std::map<std::string, std::string> fields;
};

struct StatusData {
  TimePoint now{};
  std::string version;
  std::string trust_domain;
  bool ready = false;
  std::string readiness;  // /readyz's detail
  std::vector<StatusCertificate> roots;
  std::optional<StatusCertificate> signer;  // unset: no CA loaded
  std::optional<StatusTrust> trust;         // unset: no trust manager (or not yet initialised)
  std::vector<StatusWorkload> workloads;    // any order; the renderers sort
  std::vector<StatusEvent> events;          // any order; the renderers sort newest first
};

// Outage budget: how long until the first managed certificate expires if the CA stopped at
// `data.now` (negative when one has already expired); unset when none is managed.
std::optional<Duration> OutageBudget(const StatusData& data);
// What the rotation stage means, in one sentence (for the page and the JSON).
std::string StageText(const std::string& stage);
// What a trust gate waits for, in words.
std::string GateText(const std::string& gate);

std::string HtmlEscape(std::string_view text);
std::string RenderStatusHtml(const StatusData& data);
std::string RenderStatusJson(const StatusData& data);

}  // namespace istioca::ca
