#include "ca/daemon/status_page.h"

#include <algorithm>
#include <cstdio>
#include <ctime>
#include <nlohmann/json.hpp>

namespace istioca::ca {

namespace {

using std::chrono::duration;

double Secs(Duration d) { return duration<double>(d).count(); }

// "in 23h59m" / "3m ago": an operator reads relative times first.
std::string Relative(TimePoint t, TimePoint now) {
  if (t >= now) return "in " + FormatDuration(t - now);
  return FormatDuration(now - t) + " ago";
}

// Axis labels: short UTC.
std::string ShortTime(TimePoint t, bool with_date) {
  const std::time_t tt = std::chrono::system_clock::to_time_t(t);
  std::tm tm{};
  gmtime_r(&tt, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, with_date ? "%m-%d %H:%M" : "%H:%M", &tm);
  return buf;
}

std::string Num(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f", v);
  return buf;
}

std::vector<StatusWorkload> SoonestFirst(std::vector<StatusWorkload> w) {
  std::sort(w.begin(), w.end(), [](const StatusWorkload& a, const StatusWorkload& b) {
    if (a.not_after != b.not_after) return a.not_after < b.not_after;
    return a.name < b.name;
  });
  return w;
}

std::vector<StatusEvent> NewestFirst(std::vector<StatusEvent> e) {
  std::stable_sort(e.begin(), e.end(),
                   [](const StatusEvent& a, const StatusEvent& b) { return a.time > b.time; });
  return e;
}

// ---- The expiry chart -----------------------------------------------------------------------
// x is time (from now, or the earliest overdue refresh, to the latest NotAfter). Up to
// kMaxChartMarks certificates: one row each, soonest first, a line from the rotation-due time to
// the NotAfter and a dot (class "mark") at the NotAfter. Beyond: kChartBuckets bars (class
// "mark bucket") counting the NotAfters in each slice of time, with the rotation-due times as
// thinner bars behind them.
constexpr double kW = 800, kLeft = 10, kRight = 10, kTop = 10, kAxis = 34;

struct Scale {
  TimePoint t0, t1;
  double X(TimePoint t) const {
    const double f = Secs(t - t0) / Secs(t1 - t0);
    return kLeft + std::clamp(f, 0.0, 1.0) * (kW - kLeft - kRight);
  }
};

void Axis(std::string& out, const Scale& s, double y, TimePoint now) {
  out += "<line class=\"axis\" x1=\"" + Num(kLeft) + "\" y1=\"" + Num(y) + "\" x2=\"" +
         Num(kW - kRight) + "\" y2=\"" + Num(y) + "\"/>";
  const bool with_date = s.t1 - s.t0 > std::chrono::hours(20);
  constexpr int kTicks = 5;
  for (int i = 0; i <= kTicks; ++i) {
    const TimePoint t = s.t0 + (s.t1 - s.t0) * i / kTicks;
    const double x = s.X(t);
    const char* anchor = i == 0 ? "start" : i == kTicks ? "end" : "middle";
    out += "<line class=\"tick\" x1=\"" + Num(x) + "\" y1=\"" + Num(y) + "\" x2=\"" + Num(x) +
           "\" y2=\"" + Num(y + 5) + "\"/><text x=\"" + Num(x) + "\" y=\"" + Num(y + 18) +
           "\" text-anchor=\"" + anchor + "\">" + ShortTime(t, with_date) + "</text>";
  }
  const double nx = s.X(now);
  out += "<line class=\"now\" x1=\"" + Num(nx) + "\" y1=\"" + Num(kTop - 6) + "\" x2=\"" + Num(nx) +
         "\" y2=\"" + Num(y) + "\"/><text class=\"nowlabel\" x=\"" + Num(nx + 3) + "\" y=\"" +
         Num(kTop) + "\">now</text>";
}

std::string Chart(const std::vector<StatusWorkload>& certs, TimePoint now) {
  if (certs.empty()) return "<p class=\"muted\">No managed certificates yet.</p>";
  Scale s{now, now};
  for (const StatusWorkload& c : certs) {
    s.t0 = std::min({s.t0, c.refresh_at, c.not_after});
    s.t1 = std::max(s.t1, c.not_after);
  }
  if (s.t1 - s.t0 < std::chrono::minutes(1)) s.t1 = s.t0 + std::chrono::minutes(1);

  std::string out;
  const bool bucketed = certs.size() > kMaxChartMarks;
  double plot_h;
  if (!bucketed) {
    const double row = std::clamp(480.0 / static_cast<double>(certs.size()), 1.5, 14.0);
    plot_h = row * static_cast<double>(certs.size());
    const double r = std::clamp(row / 2.5, 2.0, 4.0);
    // Thinner than a row, so neighbouring certificates stay apart.
    const std::string stroke = Num(std::min(1.5, row * 0.5));
    for (size_t i = 0; i < certs.size(); ++i) {
      const StatusWorkload& c = certs[i];
      const double y = kTop + row * (static_cast<double>(i) + 0.5);
      out += "<g><title>" + HtmlEscape(c.name) + ": rotation due " + FormatRfc3339(c.refresh_at) +
             ", expires " + FormatRfc3339(c.not_after) + "</title><line class=\"due\" x1=\"" +
             Num(s.X(c.refresh_at)) + "\" y1=\"" + Num(y) + "\" x2=\"" + Num(s.X(c.not_after)) +
             "\" y2=\"" + Num(y) + "\" stroke-width=\"" + stroke +
             "\"/><circle class=\"mark\" cx=\"" + Num(s.X(c.not_after)) + "\" cy=\"" + Num(y) +
             "\" r=\"" + Num(r) + "\"/></g>";
    }
  } else {
    plot_h = 200;
    std::vector<size_t> expiring(kChartBuckets), due(kChartBuckets);
    auto bucket = [&](TimePoint t) {
      const double f = Secs(t - s.t0) / Secs(s.t1 - s.t0);
      return std::min(kChartBuckets - 1,
                      static_cast<size_t>(std::max(0.0, f) * static_cast<double>(kChartBuckets)));
    };
    for (const StatusWorkload& c : certs) {
      ++expiring[bucket(c.not_after)];
      ++due[bucket(c.refresh_at)];
    }
    const size_t peak = std::max(*std::max_element(expiring.begin(), expiring.end()),
                                 *std::max_element(due.begin(), due.end()));
    const double bw = (kW - kLeft - kRight) / static_cast<double>(kChartBuckets);
    for (size_t b = 0; b < kChartBuckets; ++b) {
      const TimePoint from = s.t0 + (s.t1 - s.t0) * b / kChartBuckets;
      const TimePoint to = s.t0 + (s.t1 - s.t0) * (b + 1) / kChartBuckets;
      const double x = kLeft + bw * static_cast<double>(b);
      if (due[b] > 0) {
        const double h = plot_h * static_cast<double>(due[b]) / static_cast<double>(peak);
        out += "<rect class=\"duebar\" x=\"" + Num(x) + "\" y=\"" + Num(kTop + plot_h - h) +
               "\" width=\"" + Num(bw * 0.9) + "\" height=\"" + Num(h) + "\"><title>" +
               std::to_string(due[b]) + " due for rotation " + FormatRfc3339(from) + " to " +
               FormatRfc3339(to) + "</title></rect>";
      }
      if (expiring[b] > 0) {
        const double h = plot_h * static_cast<double>(expiring[b]) / static_cast<double>(peak);
        out += "<rect class=\"mark bucket\" x=\"" + Num(x + bw * 0.25) + "\" y=\"" +
               Num(kTop + plot_h - h) + "\" width=\"" + Num(bw * 0.5) + "\" height=\"" + Num(h) +
               "\"><title>" + std::to_string(expiring[b]) + " expire " + FormatRfc3339(from) +
               " to " + FormatRfc3339(to) + "</title></rect>";
      }
    }
  }
  const double axis_y = kTop + plot_h + 4;
  std::string svg = "<svg class=\"chart\" role=\"img\" viewBox=\"0 0 " + Num(kW) + " " +
                    Num(axis_y + kAxis) +
                    "\" xmlns=\"http://www.w3.org/2000/svg\" aria-label=\"expiry timeline of " +
                    std::to_string(certs.size()) + " certificates\">";
  svg += out;
  Axis(svg, s, axis_y, now);
  svg += "</svg>";
  const std::string legend =
      bucketed ? "<p class=\"legend\"><span class=\"k exp\"></span>certificates expiring in each "
                 "slice of time <span class=\"k due\"></span>certificates due for rotation (" +
                     std::to_string(certs.size()) + " certificates, " +
                     std::to_string(kChartBuckets) + " slices)</p>"
               : "<p class=\"legend\"><span class=\"k exp\"></span>expiry (NotAfter) "
                 "<span class=\"k dueline\"></span>from rotation due to expiry; soonest at the "
                 "top</p>";
  return svg + legend;
}

const char* kCss = R"(
*{box-sizing:border-box}
body{margin:0;font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1d2430;background:#f4f6f9}
header{background:#1f3a5f;color:#fff;padding:12px 16px}
header h1{margin:0;font-size:1.25rem}
header p{margin:2px 0 0;opacity:.9;font-size:.85rem;overflow-wrap:anywhere}
header .ok{color:#8ee6b0}header .bad{color:#ffb4a8}
main{max-width:1100px;margin:0 auto;padding:8px 12px 24px}
section{background:#fff;border-radius:8px;box-shadow:0 1px 3px rgba(0,0,0,.08);padding:12px 14px;margin:12px 0}
h2{font-size:1.05rem;margin:0 0 8px}
.muted{color:#667085}
.ok{color:#147a3c}.bad{color:#b42318}
.budget{font-size:1.6rem;font-weight:600}
.cards{display:flex;flex-wrap:wrap;gap:10px}
.card{flex:1 1 240px;min-width:0;border:1px solid #e4e7ec;border-radius:6px;padding:8px 10px}
.card h3{margin:0 0 4px;font-size:.95rem}
dl{margin:0;display:grid;grid-template-columns:max-content 1fr;gap:2px 10px;font-size:.85rem}
dt{color:#667085}dd{margin:0;overflow-wrap:anywhere;min-width:0}
code{font:12px/1.3 ui-monospace,Menlo,Consolas,monospace;overflow-wrap:anywhere}
.scroll{overflow-x:auto;max-width:100%}
table{border-collapse:collapse;width:100%;font-size:.85rem}
th,td{text-align:left;padding:4px 6px;border-bottom:1px solid #eef0f3;vertical-align:top}
td.wrap{overflow-wrap:anywhere;word-break:break-word}
th{font-weight:600;color:#475467;background:#f9fafb}
tr.soon td{background:#fff4e5}tr.expired td{background:#fde8e8}
.badge{display:inline-block;padding:0 6px;border-radius:9px;font-size:.75rem;background:#e4e7ec}
.badge.refused{background:#fde8e8;color:#b42318}.badge.issued{background:#e3f4ea;color:#147a3c}
svg.chart{width:100%;height:auto;display:block}
svg .mark{fill:#1f6feb}svg .bucket{fill:#1f6feb}
svg .due{stroke:#f5a524}svg .duebar{fill:#fbd38d}
svg .axis,svg .tick{stroke:#98a2b3;stroke-width:1}
svg .now{stroke:#b42318;stroke-dasharray:4 3}
svg text{font-size:12px;fill:#475467}svg .nowlabel{fill:#b42318}
.legend{font-size:.8rem;color:#475467;margin:4px 0 0}
.k{display:inline-block;width:10px;height:10px;margin:0 4px 0 8px;border-radius:50%}
.k.exp{background:#1f6feb}.k.due{background:#fbd38d;border-radius:0}
.k.dueline{background:#f5a524;height:3px;border-radius:0;vertical-align:middle}
@media (max-width:600px){.hide-s{display:none}body{font-size:14px}}
)";

std::string FieldsText(const std::map<std::string, std::string>& fields) {
  std::string out;
  for (const auto& [k, v] : fields) {
    if (!out.empty()) out += " ";
    out += "<code>" + HtmlEscape(k) + "=" + HtmlEscape(v) + "</code>";
  }
  return out;
}

void EventTable(std::string& out, const std::vector<StatusEvent>& events, const char* id,
                const char* title, const char* empty) {
  out += "<section id=\"" + std::string(id) + "\"><h2>" + title + "</h2>";
  if (events.empty()) {
    out += "<p class=\"muted\">" + std::string(empty) + "</p></section>";
    return;
  }
  out +=
      "<div class=\"scroll\"><table><thead><tr><th>When</th><th>Event</th><th>Details</th>"
      "</tr></thead><tbody>";
  for (size_t i = 0; i < events.size() && i < kMaxEventRows; ++i) {
    const StatusEvent& e = events[i];
    out += "<tr><td title=\"" + FormatRfc3339(e.time) + "\">" + ShortTime(e.time, false) +
           "</td><td><span class=\"badge " + HtmlEscape(e.type) + "\">" + HtmlEscape(e.type) +
           "</span></td><td class=\"wrap\">" + FieldsText(e.fields) + "</td></tr>";
  }
  out += "</tbody></table></div>";
  if (events.size() > kMaxEventRows) {
    out += "<p class=\"muted\">" + std::to_string(kMaxEventRows) + " newest of " +
           std::to_string(events.size()) + " kept.</p>";
  }
  out += "</section>";
}

void CaCard(std::string& out, const StatusCertificate& c, const std::string& title, TimePoint now) {
  out += "<div class=\"card\"><h3>" + title + "</h3><dl><dt>Subject</dt><dd>" +
         HtmlEscape(c.subject) + "</dd><dt>SKID</dt><dd><code>" + HtmlEscape(c.skid) +
         "</code></dd><dt>NotAfter</dt><dd>" + FormatRfc3339(c.not_after) + " (" +
         Relative(c.not_after, now) + ")</dd>";
  if (!c.serial_hex.empty()) {
    out += "<dt>Serial</dt><dd><code>" + HtmlEscape(c.serial_hex) + "</code></dd>";
  }
  if (c.anchors_signer) out += "<dt>Role</dt><dd>anchors the active signer</dd>";
  if (c.leaving) out += "<dt>Leaving</dt><dd>after the rotation in progress</dd>";
  if (c.retire_after) {
    out += "<dt>Retires</dt><dd>" + FormatRfc3339(*c.retire_after) + " (" +
           Relative(*c.retire_after, now) + ")</dd>";
  }
  out += "</dl></div>";
}

}  // namespace

std::string HtmlEscape(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (const char ch : text) {
    switch (ch) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&#39;"; break;
      default: out += ch;
    }
  }
  return out;
}

std::optional<Duration> OutageBudget(const StatusData& data) {
  std::optional<TimePoint> first;
  for (const StatusWorkload& w : data.workloads) {
    if (!first || w.not_after < *first) first = w.not_after;
  }
  if (!first) return std::nullopt;
  return *first - data.now;
}

std::string StageText(const std::string& stage) {
  if (stage == "stable") return "Stable: one signer, no rotation in progress.";
  if (stage == "prepared") {
    return "Prepared: the next root is in the bundle and being distributed; the next signer "
           "activates once every workload trusts it.";
  }
  if (stage == "active") {
    return "Active: the new signer signs; the previous signer's root stays in the bundle until "
           "every certificate it signed has expired.";
  }
  return "Unknown stage.";
}

std::string GateText(const std::string& gate) {
  if (gate == "none") return "nothing";
  if (gate == "distribution") return "every secret, ConfigMap and file carrying the new bundle";
  if (gate == "propagation-delay") return "kubelets propagating the last bundle write";
  if (gate == "certificates-without-new-root") {
    return "certificates handed out with a bundle lacking the new root expiring";
  }
  if (gate == "previous-signer-certificates") {
    return "certificates signed under the leaving root expiring";
  }
  if (gate == "active-signer-expiry") return "the active signer nearing expiry (forced, unsafe)";
  return gate;
}

std::string RenderStatusHtml(const StatusData& d) {
  const std::vector<StatusWorkload> certs = SoonestFirst(d.workloads);
  const std::vector<StatusEvent> events = NewestFirst(d.events);
  std::vector<StatusEvent> issued, refused, other;
  for (const StatusEvent& e : events) {
    (e.type == "issued" ? issued : e.type == "refused" ? refused : other).push_back(e);
  }

  std::string out;
  out.reserve(4096 + certs.size() * 400);
  out +=
      "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
      "<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">"
      "<title>istio-ca status</title>"
      // An empty inline icon: without it a browser asks for /favicon.ico (a 404).
      "<link rel=\"icon\" href=\"data:,\"><style>";
  out += kCss;
  out += "</style></head><body><header><h1>istio-ca status</h1><p>trust domain <b>" +
         HtmlEscape(d.trust_domain) + "</b> · " + HtmlEscape(d.version) + " · " +
         FormatRfc3339(d.now) + " · <span class=\"" + (d.ready ? "ok" : "bad") + "\">" +
         (d.ready ? "ready" : "not ready") + "</span> " + HtmlEscape(d.readiness) +
         "</p></header><main>";

  // Outage budget first: the one number that says how much trouble a stopped CA is.
  out += "<section id=\"budget\"><h2>Outage budget</h2>";
  if (const auto budget = OutageBudget(d)) {
    const StatusWorkload& first = certs.front();
    out += std::string("<div class=\"budget ") + (*budget > Duration::zero() ? "ok" : "bad") +
           "\">" + (*budget > Duration::zero() ? FormatDuration(*budget) : "expired") +
           "</div><p>If the CA stopped now, the first managed certificate (<b>" +
           HtmlEscape(first.name) + "</b>) would expire " + Relative(first.not_after, d.now) +
           ", at " + FormatRfc3339(first.not_after) + ". " + std::to_string(certs.size()) +
           " certificates managed.</p>";
  } else {
    out += "<p class=\"muted\">No managed certificates.</p>";
  }
  out += "</section>";

  // Trust bundle.
  out += "<section id=\"trust\"><h2>Trust bundle</h2>";
  if (d.trust) {
    const StatusTrust& t = *d.trust;
    out += "<p><b>Stage: " + HtmlEscape(t.stage) + "</b> — " + HtmlEscape(StageText(t.stage)) +
           " Bundle generation " + std::to_string(t.bundle_generation) + " on " +
           std::to_string(t.objects_updated) + " of " + std::to_string(t.objects_total) +
           " objects.</p>";
    if (t.stage != "stable" || t.action != "none" || t.gate != "none") {
      out += "<p id=\"next\">Next: <b>" + HtmlEscape(t.action) + "</b>";
      if (t.next_transition) {
        out += " at " + FormatRfc3339(*t.next_transition) + " (" +
               Relative(*t.next_transition, d.now) + ")";
      }
      out += "; waiting for " + HtmlEscape(GateText(t.gate));
      if (t.outstanding_not_after) {
        out += " (until " + FormatRfc3339(*t.outstanding_not_after) + ")";
      }
      out += ".</p>";
    } else {
      out += "<p id=\"next\">Next: no transition pending.</p>";
    }
    if (t.unsafe_at) {
      out += "<p class=\"bad\">Unsafe forced activation at " + FormatRfc3339(*t.unsafe_at) + " (" +
             Relative(*t.unsafe_at, d.now) + ").</p>";
    }
  }
  out += "<div class=\"cards\">";
  if (d.signer) CaCard(out, *d.signer, "Active signer", d.now);
  for (size_t i = 0; i < d.roots.size(); ++i) {
    CaCard(out, d.roots[i], "Root " + std::to_string(i + 1), d.now);
  }
  out += "</div>";
  if (!d.signer) out += "<p class=\"bad\">No CA loaded.</p>";
  out += "</section>";

  // Expiry timeline and table.
  out += "<section id=\"timeline\"><h2>Expiry timeline</h2>" + Chart(certs, d.now) + "</section>";
  out += "<section id=\"certificates\"><h2>Managed certificates, soonest expiry first</h2>";
  if (certs.empty()) {
    out += "<p class=\"muted\">None.</p>";
  } else {
    out +=
        "<div class=\"scroll\"><table id=\"certs\"><thead><tr><th>Service account</th>"
        "<th>Expires</th><th>Rotation due</th><th class=\"hide-s\">Serial</th></tr></thead>"
        "<tbody>";
    for (size_t i = 0; i < certs.size() && i < kMaxTableRows; ++i) {
      const StatusWorkload& c = certs[i];
      const char* cls = c.not_after <= d.now    ? " class=\"expired\""
                        : c.refresh_at <= d.now ? " class=\"soon\""
                                                : "";
      out += std::string("<tr") + cls + " data-sa=\"" + HtmlEscape(c.name) +
             "\"><td class=\"wrap\">" + HtmlEscape(c.name) + "</td><td title=\"" +
             FormatRfc3339(c.not_after) + "\">" + Relative(c.not_after, d.now) +
             "</td><td title=\"" + FormatRfc3339(c.refresh_at) + "\">" +
             Relative(c.refresh_at, d.now) + "</td><td class=\"hide-s\"><code>" +
             HtmlEscape(c.serial_hex) + "</code></td></tr>";
    }
    out += "</tbody></table></div>";
    if (certs.size() > kMaxTableRows) {
      out += "<p class=\"muted\">The " + std::to_string(kMaxTableRows) + " soonest of " +
             std::to_string(certs.size()) + "; /status.json lists all.</p>";
    }
  }
  out += "</section>";

  EventTable(out, issued, "issued", "Recent issuances", "No issuance recorded yet.");
  EventTable(out, refused, "refused", "Recent refusals", "No refusal recorded.");
  EventTable(out, other, "changes", "Secret and CA changes", "No change recorded yet.");
  out +=
      "<p class=\"muted\">Machine-readable: <a href=\"status.json\">/status.json</a> · "
      "<a href=\"metrics\">/metrics</a></p></main></body></html>\n";
  return out;
}

std::string RenderStatusJson(const StatusData& d) {
  using nlohmann::json;
  auto time_or_null = [](const std::optional<TimePoint>& t) -> json {
    return t ? json(FormatRfc3339(*t)) : json(nullptr);
  };
  auto ca_cert = [&](const StatusCertificate& c) {
    json j = {{"subject", c.subject}, {"skid", c.skid}, {"not_after", FormatRfc3339(c.not_after)}};
    if (!c.serial_hex.empty()) j["serial"] = c.serial_hex;
    return j;
  };
  json j;
  j["now"] = FormatRfc3339(d.now);
  j["version"] = d.version;
  j["trust_domain"] = d.trust_domain;
  j["ready"] = d.ready;
  j["readiness"] = d.readiness;
  j["signer"] = d.signer ? ca_cert(*d.signer) : json(nullptr);
  j["roots"] = json::array();
  for (const StatusCertificate& r : d.roots) {
    json jr = ca_cert(r);
    jr["anchors_signer"] = r.anchors_signer;
    jr["leaving"] = r.leaving;
    jr["retire_after"] = time_or_null(r.retire_after);
    j["roots"].push_back(std::move(jr));
  }
  if (d.trust) {
    const StatusTrust& t = *d.trust;
    j["trust"] = {{"stage", t.stage},
                  {"stage_text", StageText(t.stage)},
                  {"bundle_generation", t.bundle_generation},
                  {"next_action", t.action},
                  {"gate", t.gate},
                  {"gate_text", GateText(t.gate)},
                  {"next_transition", time_or_null(t.next_transition)},
                  {"objects_updated", t.objects_updated},
                  {"objects_total", t.objects_total},
                  {"outstanding_not_after", time_or_null(t.outstanding_not_after)},
                  {"unsafe_at", time_or_null(t.unsafe_at)}};
  } else {
    j["trust"] = nullptr;
  }
  const auto budget = OutageBudget(d);
  j["outage_budget_seconds"] =
      budget ? json(std::chrono::duration_cast<std::chrono::seconds>(*budget).count())
             : json(nullptr);
  j["certificates"] = json::array();
  for (const StatusWorkload& c : SoonestFirst(d.workloads)) {
    j["certificates"].push_back({{"service_account", c.name},
                                 {"serial", c.serial_hex},
                                 {"not_before", FormatRfc3339(c.not_before)},
                                 {"not_after", FormatRfc3339(c.not_after)},
                                 {"rotation_due", FormatRfc3339(c.refresh_at)}});
  }
  j["events"] = json::array();
  for (const StatusEvent& e : NewestFirst(d.events)) {
    j["events"].push_back(
        {{"time", FormatRfc3339(e.time)}, {"type", e.type}, {"fields", e.fields}});
  }
  // Replace invalid UTF-8 (a hostile name) rather than throw.
  return j.dump(2, ' ', false, json::error_handler_t::replace) + "\n";
}

}  // namespace istioca::ca
