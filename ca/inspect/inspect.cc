#include "ca/inspect/inspect.h"

#include <algorithm>
#include <cmath>
#include <sstream>

#include "pki/spiffe.h"
#include "pki/verify.h"

namespace istioca::ca {
namespace {

using std::chrono::duration_cast;
using std::chrono::seconds;

std::string Role(const pki::CertInfo& info, size_t index) {
  if (index == 0 && !info.is_ca) return "leaf";
  if (info.is_ca && info.self_signed) return "root";
  if (info.is_ca) return index == 0 ? "ca" : "intermediate";
  return "certificate";
}

CertReport Report(const pki::Certificate& cert, const std::string& role, TimePoint at) {
  CertReport r;
  r.role = role;
  r.info = pki::Describe(cert);
  r.time_left = r.info.not_after - at;
  return r;
}

std::string Plural(size_t n, const char* word) {
  return std::to_string(n) + " " + word + (n == 1 ? "" : "s");
}

}  // namespace

SetReport Inspect(const MaterialSet& set, const InspectOptions& options) {
  SetReport out;
  out.source = set.source;
  out.kind = set.kind;
  out.at = options.at;
  out.notes = set.notes;
  const TimePoint at = options.at;
  if (!set.load_error.empty()) {
    out.problems.push_back(set.load_error);
    return out;
  }

  for (size_t i = 0; i < set.chain.size(); ++i) {
    const pki::CertInfo info = pki::Describe(set.chain[i]);
    out.chain.push_back(Report(set.chain[i], Role(info, i), at));
  }

  // Which roots to trust: --roots, else the set's own root-cert.pem, else the self-signed CA
  // certificates at the end of the chain itself (a chain file that ends in its root).
  std::vector<pki::Certificate> anchors;
  if (options.roots.has_value()) {
    anchors = *options.roots;
    out.roots_source = options.roots_name;
  } else if (!set.roots.empty()) {
    anchors = set.roots;
    out.roots_source = set.roots_name;
  } else {
    for (size_t i = 0; i < out.chain.size(); ++i) {
      if (out.chain[i].role == "root") anchors.push_back(set.chain[i]);
    }
    out.roots_source = anchors.empty() ? "none" : "the chain's own root";
  }
  for (const pki::Certificate& root : set.roots) out.roots.push_back(Report(root, "root", at));
  if (options.roots.has_value() && !set.roots.empty()) {
    bool same = options.roots->size() == set.roots.size();
    for (size_t i = 0; same && i < set.roots.size(); ++i)
      same = (*options.roots)[i] == set.roots[i];
    out.roots_match = same;
    if (same) out.bundle_generation = options.bundle_generation;
    auto has = [](const std::vector<pki::Certificate>& in, const pki::Certificate& c) {
      return std::find(in.begin(), in.end(), c) != in.end();
    };
    auto skid = [](const pki::Certificate& c) {
      const std::string id = pki::Describe(c).subject_key_id;
      return id.empty() ? c.Sha256Fingerprint() : id;
    };
    for (const pki::Certificate& c : *options.roots) {
      if (!has(set.roots, c)) out.bundle_missing_roots.push_back(skid(c));
    }
    for (const pki::Certificate& c : set.roots) {
      if (!has(*options.roots, c)) out.bundle_extra_roots.push_back(skid(c));
    }
    if (!same) {
      out.warnings.push_back(set.roots_name + " differs from " + options.roots_name +
                             " (the CA refreshes such a secret)");
    }
  }

  if (set.chain.empty()) {
    // A roots-only set (e.g. root-cert.pem on its own): report the roots' own validity.
    for (const CertReport& r : out.roots) {
      if (r.time_left <= Duration::zero()) {
        out.problems.push_back("root " + r.info.subject + " expired at " +
                               FormatRfc3339(r.info.not_after));
      }
    }
  }

  if (!set.chain.empty()) {
    const CertReport& first = out.chain.front();
    const bool has_leaf = first.role == "leaf" || first.role == "certificate";
    if (has_leaf) {
      out.spiffe_id = first.info.spiffe_id;
      out.rotation_due_at = RefreshTime(
          {first.info.not_before, first.info.not_after, first.info.serial_hex}, options.rotation);
    }
    // Validity of everything the workload presents (the chain, not the roots).
    for (const CertReport& r : out.chain) {
      if (!out.expires_at.has_value() || r.info.not_after < *out.expires_at)
        out.expires_at = r.info.not_after;
      const std::string who = r.role + (r.info.spiffe_id         ? " " + *r.info.spiffe_id
                                        : r.info.subject.empty() ? ""
                                                                 : " " + r.info.subject);
      if (at >= r.info.not_after) {
        out.problems.push_back(who + " expired at " + FormatRfc3339(r.info.not_after) + " (" +
                               FormatDuration(at - r.info.not_after) + " ago)");
      } else if (at < r.info.not_before) {
        out.problems.push_back(who + " is not valid until " + FormatRfc3339(r.info.not_before));
      } else if (options.expiring_within > Duration::zero() &&
                 r.time_left < options.expiring_within) {
        out.problems.push_back(who + " expires within " + FormatDuration(options.expiring_within) +
                               " (at " + FormatRfc3339(r.info.not_after) + ")");
      }
    }
    if (has_leaf && out.rotation_due_at && at >= *out.rotation_due_at &&
        at < first.info.not_after) {
      out.warnings.push_back("rotation is overdue since " + FormatRfc3339(*out.rotation_due_at) +
                             " (the certificate is in its grace period)");
    }

    // Chain verification at `at`. Validity problems are reported above, so when verification
    // fails only because of time, do not report it twice.
    if (!anchors.empty()) {
      std::vector<pki::Certificate> intermediates(set.chain.begin() + 1, set.chain.end());
      auto path = pki::VerifyChain(set.chain.front(), intermediates, anchors, at);
      out.chain_verified = path.ok();
      if (path.ok()) {
        for (const pki::Certificate& c : *path) out.verified_path.push_back(c.Sha256Fingerprint());
      } else {
        out.chain_error = path.status().message();
        const bool time_only = out.chain_error.find("expired") != std::string::npos ||
                               out.chain_error.find("not yet valid") != std::string::npos;
        if (!time_only || out.problems.empty()) {
          out.problems.push_back("chain does not verify against " + out.roots_source + ": " +
                                 out.chain_error);
        }
      }
    }

    // Key/certificate match.
    if (set.key.has_value()) {
      out.key_present = true;
      out.key_type = set.key->Describe();
      out.key_matches = pki::SamePublicKey(set.key->get(), set.chain.front().PublicKey());
      if (!*out.key_matches) {
        out.problems.push_back("private key (" + out.key_type + ") does not match the " +
                               first.role + " certificate's public key (" + first.info.key + ")");
      }
    }

    // X509-SVID rules apply to a leaf that claims a SPIFFE identity.
    if (has_leaf) {
      for (const std::string& uri : first.info.uri_sans) {
        if (uri.rfind("spiffe:", 0) == 0 || uri.rfind("SPIFFE:", 0) == 0) out.svid_applies = true;
      }
      if (out.svid_applies) {
        out.svid_violations = pki::LeafSvidViolations(first.info);
        for (size_t i = 1; i < out.chain.size(); ++i) {
          for (const std::string& v : pki::SigningSvidViolations(out.chain[i].info)) {
            out.svid_violations.push_back(out.chain[i].role + ": " + v);
          }
        }
        for (const std::string& v : out.svid_violations) out.problems.push_back("X509-SVID: " + v);
      } else {
        out.notes.push_back("the leaf has no SPIFFE ID, so it is not an X509-SVID");
      }
    } else {
      // The set starts with a CA. If it claims a SPIFFE ID it is an X509-SVID signing
      // certificate, whose ID must not have a path; a workload ID (spiffe://td/ns/x/sa/y) on a
      // CA:TRUE certificate is a workload identity that can sign others.
      for (const std::string& uri : first.info.uri_sans) {
        if (uri.rfind("spiffe:", 0) == 0 || uri.rfind("SPIFFE:", 0) == 0) out.svid_applies = true;
      }
      if (out.svid_applies) {
        for (size_t i = 0; i < out.chain.size(); ++i) {
          for (const std::string& v : pki::SigningSvidViolations(out.chain[i].info)) {
            out.svid_violations.push_back(out.chain[i].role + ": " + v);
          }
        }
        if (first.info.spiffe_id.has_value() && pki::ParseSpiffeId(*first.info.spiffe_id).ok() &&
            !pki::ParseSpiffeId(*first.info.spiffe_id)->path.empty()) {
          out.svid_violations.push_back(first.role + ": " + *first.info.spiffe_id +
                                        " is a workload identity and must not be a CA");
        }
        for (const std::string& v : out.svid_violations) out.problems.push_back("X509-SVID: " + v);
      }
    }
  }
  return out;
}

namespace {

struct Style {
  bool color;
  std::string Bold(const std::string& s) const { return color ? "\x1b[1m" + s + "\x1b[0m" : s; }
  std::string Red(const std::string& s) const { return color ? "\x1b[1;31m" + s + "\x1b[0m" : s; }
  std::string Green(const std::string& s) const { return color ? "\x1b[32m" + s + "\x1b[0m" : s; }
  std::string Yellow(const std::string& s) const { return color ? "\x1b[33m" + s + "\x1b[0m" : s; }
  std::string Dim(const std::string& s) const { return color ? "\x1b[2m" + s + "\x1b[0m" : s; }
};

std::string Join(const std::vector<std::string>& v, const std::string& sep) {
  std::string out;
  for (size_t i = 0; i < v.size(); ++i) out += (i ? sep : "") + v[i];
  return out;
}

std::string When(TimePoint t, TimePoint at) {
  const Duration d = t - at;
  return FormatRfc3339(t) + (d >= Duration::zero() ? " (in " + FormatDuration(d) + ")"
                                                   : " (" + FormatDuration(-d) + " ago)");
}

void RenderCert(std::ostringstream& o, const CertReport& r, size_t index, const Style& s,
                TimePoint at) {
  const pki::CertInfo& c = r.info;
  o << "  " << s.Bold("[" + std::to_string(index) + "] " + r.role) << "\n";
  auto line = [&](const std::string& k, const std::string& v) {
    o << "      " << k << std::string(k.size() < 13 ? 13 - k.size() : 1, ' ') << v << "\n";
  };
  if (c.spiffe_id) line("SPIFFE ID", s.Bold(*c.spiffe_id));
  line("Subject", c.subject.empty() ? s.Dim("(empty)") : c.subject);
  line("Issuer", c.issuer.empty() ? s.Dim("(empty)") : c.issuer);
  line("Serial", c.serial_hex);
  std::string left = r.time_left > Duration::zero()
                         ? FormatDuration(r.time_left) + " left"
                         : "expired " + FormatDuration(-r.time_left) + " ago";
  if (at < c.not_before) left = "not yet valid";
  line("Validity",
       FormatRfc3339(c.not_before) + " to " + FormatRfc3339(c.not_after) + " (" + left + ")");
  std::vector<std::string> sans;
  for (const auto& u : c.uri_sans) sans.push_back("URI:" + u);
  for (const auto& d : c.dns_sans) sans.push_back("DNS:" + d);
  for (const auto& i : c.ip_sans) sans.push_back("IP:" + i);
  for (const auto& e : c.email_sans) sans.push_back("email:" + e);
  if (!sans.empty()) line("SANs", Join(sans, ", ") + (c.san_critical ? " (critical)" : ""));
  line("Key", c.key + ", signed with " + c.signature_algorithm);
  std::string usage = c.basic_constraints_present
                          ? std::string(c.is_ca ? "CA:TRUE" : "CA:FALSE") +
                                (c.path_len >= 0 ? " pathlen:" + std::to_string(c.path_len) : "")
                          : "no basicConstraints";
  if (!c.key_usage.empty())
    usage += "; " + Join(c.key_usage, ", ") + (c.key_usage_critical ? " (critical)" : "");
  if (!c.ext_key_usage.empty()) usage += "; " + Join(c.ext_key_usage, ", ");
  line("Usage", usage);
  if (!c.subject_key_id.empty()) line("SKID", c.subject_key_id);
  if (!c.authority_key_id.empty()) line("AKID", c.authority_key_id);
  line("SHA-256", c.sha256_fingerprint);
}

}  // namespace

std::string RenderText(const std::vector<SetReport>& reports, const RenderOptions& options) {
  const Style s{options.color};
  std::ostringstream o;
  for (size_t n = 0; n < reports.size(); ++n) {
    const SetReport& r = reports[n];
    if (n) o << "\n";
    o << s.Bold(r.source) << " (" << r.kind << ")  "
      << (r.healthy() ? s.Green("HEALTHY")
                      : s.Red("PROBLEM: " + Plural(r.problems.size(), "problem")))
      << "\n";
    auto row = [&](const std::string& k, const std::string& v) {
      o << "  " << k << std::string(k.size() < 12 ? 12 - k.size() : 1, ' ') << v << "\n";
    };
    if (!r.chain.empty() &&
        (r.chain.front().role == "leaf" || r.chain.front().role == "certificate")) {
      row("SPIFFE ID", r.spiffe_id ? s.Bold(*r.spiffe_id) : s.Yellow("none"));
    }
    if (r.expires_at) row("Expires", When(*r.expires_at, r.at));
    if (r.rotation_due_at) row("Rotation", "due " + When(*r.rotation_due_at, r.at));
    if (!r.chain.empty()) {
      if (!r.chain_verified.has_value()) {
        row("Chain", s.Yellow("not verified: no roots (pass --roots FILE)"));
      } else if (*r.chain_verified) {
        row("Chain", s.Green("verified") + " against " + r.roots_source + " (" +
                         Plural(r.verified_path.size(), "certificate") + " in the path)");
      } else {
        row("Chain", s.Red("FAILED") + " against " + r.roots_source + ": " + r.chain_error);
      }
      if (r.roots_match.has_value()) {
        std::string bundle;
        if (*r.roots_match) {
          bundle = r.bundle_generation ? "generation " + std::to_string(*r.bundle_generation) +
                                             " (the CA's current)"
                                       : "the same as " + r.roots_source;
        } else {
          bundle = s.Yellow("differs") + " from " + r.roots_source + ":";
          for (const std::string& id : r.bundle_missing_roots) bundle += " lacks root " + id + ";";
          for (const std::string& id : r.bundle_extra_roots) bundle += " carries root " + id + ";";
          if (bundle.back() == ';') bundle.pop_back();
          if (bundle.back() == ':') bundle += " different order";
        }
        row("Trust bundle", bundle);
      }
      if (r.key_present) {
        row("Key", *r.key_matches
                       ? s.Green("matches") + " the certificate (" + r.key_type + ")"
                       : s.Red("DOES NOT MATCH") + " the certificate (" + r.key_type + ")");
      }
      if (r.svid_applies) {
        row("X509-SVID", r.svid_violations.empty()
                             ? s.Green("conforms")
                             : s.Red(Plural(r.svid_violations.size(), "violation")));
      }
    }
    if (!r.roots.empty()) row("Roots", Plural(r.roots.size(), "trusted root"));
    for (const auto& p : r.problems) o << "  " << s.Red("problem: ") << p << "\n";
    for (const auto& w : r.warnings) o << "  " << s.Yellow("warning: ") << w << "\n";
    for (const auto& note : r.notes) o << "  " << s.Dim("note: " + note) << "\n";
    if (options.verbose) {
      size_t index = 0;
      for (const CertReport& c : r.chain) {
        o << "\n";
        RenderCert(o, c, index++, s, r.at);
      }
      for (const CertReport& c : r.roots) {
        o << "\n";
        RenderCert(o, c, index++, s, r.at);
      }
    }
  }
  return o.str();
}

void SortByExpiry(std::vector<SetReport>& reports) {
  std::stable_sort(reports.begin(), reports.end(), [](const SetReport& a, const SetReport& b) {
    const TimePoint ta = a.expires_at.value_or(TimePoint::min());
    const TimePoint tb = b.expires_at.value_or(TimePoint::min());
    return ta < tb;
  });
}

std::string RenderFleet(std::vector<SetReport> reports, const RenderOptions& options) {
  SortByExpiry(reports);
  const Style s{options.color};
  struct Row {
    std::string cells[6];
    bool healthy;
    std::string problem;
  };
  std::vector<Row> rows;
  rows.push_back(
      {{"SECRET", "SPIFFE ID", "EXPIRES IN", "ROTATION IN", "ROOTS", "STATUS"}, true, ""});
  size_t unhealthy = 0;
  for (const SetReport& r : reports) {
    Row row;
    std::string name = r.source;
    if (name.rfind("secret ", 0) == 0) name = name.substr(7);
    row.cells[0] = name;
    row.cells[1] = r.spiffe_id.value_or("-");
    row.cells[2] = r.expires_at ? FormatDuration(*r.expires_at - r.at) : "-";
    row.cells[3] = r.rotation_due_at ? FormatDuration(*r.rotation_due_at - r.at) : "-";
    row.cells[4] = !r.roots_match.has_value() ? "-"
                   : !*r.roots_match          ? "DIFFER"
                   : r.bundle_generation      ? "gen " + std::to_string(*r.bundle_generation)
                                              : "match";
    row.healthy = r.healthy();
    row.cells[5] = row.healthy ? "ok" : "PROBLEM";
    if (!row.healthy) {
      ++unhealthy;
      row.problem = r.problems.front();
    }
    rows.push_back(std::move(row));
  }
  size_t width[6] = {0};
  for (const Row& row : rows) {
    for (int c = 0; c < 6; ++c) width[c] = std::max(width[c], row.cells[c].size());
  }
  std::ostringstream o;
  for (size_t i = 0; i < rows.size(); ++i) {
    const Row& row = rows[i];
    std::string line;
    for (int c = 0; c < 6; ++c) {
      std::string cell = row.cells[c];
      if (c < 5) cell += std::string(width[c] - cell.size() + 2, ' ');
      line += cell;
    }
    if (i == 0) {
      o << s.Bold(line) << "\n";
    } else {
      o << (row.healthy ? line : s.Red(line) + "  " + row.problem) << "\n";
    }
  }
  o << reports.size() << " secret" << (reports.size() == 1 ? "" : "s") << ", "
    << (unhealthy == 0 ? s.Green("all healthy")
                       : s.Red(std::to_string(unhealthy) + " with problems"))
    << "\n";
  return o.str();
}

namespace {

// JSON null for an empty optional.
template <class T>
nlohmann::json Nullable(const std::optional<T>& v) {
  return v ? nlohmann::json(*v) : nlohmann::json(nullptr);
}

nlohmann::json CertJson(const CertReport& r) {
  const pki::CertInfo& c = r.info;
  nlohmann::json j;
  j["role"] = r.role;
  j["subject"] = c.subject;
  j["issuer"] = c.issuer;
  j["serial"] = c.serial_hex;
  j["not_before"] = FormatRfc3339(c.not_before);
  j["not_after"] = FormatRfc3339(c.not_after);
  j["seconds_left"] = duration_cast<seconds>(r.time_left).count();
  j["spiffe_id"] = Nullable(c.spiffe_id);
  j["uri_sans"] = c.uri_sans;
  j["dns_sans"] = c.dns_sans;
  j["ip_sans"] = c.ip_sans;
  j["email_sans"] = c.email_sans;
  j["key_type"] = c.key;
  j["key_bits"] = c.key_bits;
  j["signature_algorithm"] = c.signature_algorithm;
  j["is_ca"] = c.is_ca;
  j["path_len"] = c.path_len >= 0 ? nlohmann::json(c.path_len) : nlohmann::json(nullptr);
  j["key_usage"] = c.key_usage;
  j["ext_key_usage"] = c.ext_key_usage;
  j["subject_key_id"] = c.subject_key_id;
  j["authority_key_id"] = c.authority_key_id;
  j["sha256_fingerprint"] = c.sha256_fingerprint;
  j["self_signed"] = c.self_signed;
  return j;
}

nlohmann::json OptTime(const std::optional<TimePoint>& t) {
  return t ? nlohmann::json(FormatRfc3339(*t)) : nlohmann::json(nullptr);
}

}  // namespace

nlohmann::json RenderJson(const std::vector<SetReport>& reports, TimePoint at) {
  nlohmann::json out;
  out["schema"] = "istio-ca.inspect/v1";
  out["evaluated_at"] = FormatRfc3339(at);
  bool healthy = true;
  out["sets"] = nlohmann::json::array();
  for (const SetReport& r : reports) {
    healthy &= r.healthy();
    nlohmann::json j;
    j["source"] = r.source;
    j["kind"] = r.kind;
    j["healthy"] = r.healthy();
    j["problems"] = r.problems;
    j["warnings"] = r.warnings;
    j["notes"] = r.notes;
    j["spiffe_id"] = Nullable(r.spiffe_id);
    j["expires_at"] = OptTime(r.expires_at);
    j["seconds_left"] = r.expires_at
                            ? nlohmann::json(duration_cast<seconds>(*r.expires_at - at).count())
                            : nlohmann::json(nullptr);
    j["rotation_due_at"] = OptTime(r.rotation_due_at);
    j["chain"] = {{"verified", Nullable(r.chain_verified)},
                  {"error", r.chain_error},
                  {"roots_source", r.roots_source},
                  {"roots_match", Nullable(r.roots_match)},
                  {"bundle_generation", r.bundle_generation ? nlohmann::json(*r.bundle_generation)
                                                            : nlohmann::json(nullptr)},
                  {"bundle_missing_roots", r.bundle_missing_roots},
                  {"bundle_extra_roots", r.bundle_extra_roots},
                  {"path", r.verified_path}};
    j["key"] = {
        {"present", r.key_present}, {"matches", Nullable(r.key_matches)}, {"type", r.key_type}};
    j["svid"] = {{"applies", r.svid_applies}, {"violations", r.svid_violations}};
    j["certificates"] = nlohmann::json::array();
    for (const CertReport& c : r.chain) j["certificates"].push_back(CertJson(c));
    j["roots"] = nlohmann::json::array();
    for (const CertReport& c : r.roots) j["roots"].push_back(CertJson(c));
    out["sets"].push_back(std::move(j));
  }
  out["healthy"] = healthy;
  return out;
}

}  // namespace istioca::ca
