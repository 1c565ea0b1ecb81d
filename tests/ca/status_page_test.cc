// The status page renderer: a pure function of a StatusData snapshot.
#include "ca/daemon/status_page.h"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>
#include <string>

using namespace istioca;
using namespace istioca::ca;
using namespace std::chrono_literals;

namespace {

size_t Count(const std::string& haystack, const std::string& needle) {
  size_t n = 0;
  for (size_t pos = haystack.find(needle); pos != std::string::npos;
       pos = haystack.find(needle, pos + needle.size())) {
    ++n;
  }
  return n;
}

const TimePoint kNow = TimePoint(std::chrono::seconds(1'800'000'000));

StatusData WithWorkloads(size_t n) {
  StatusData d;
  d.now = kNow;
  d.trust_domain = "cluster.local";
  for (size_t i = 0; i < n; ++i) {
    const TimePoint nb = kNow - std::chrono::minutes(i % 600);
    d.workloads.push_back(
        {"ns/sa-" + std::to_string(i), "ab" + std::to_string(i), nb, nb + 24h, nb + 12h});
  }
  return d;
}

}  // namespace

TEST_CASE("status page: every outside string is HTML-escaped", "[status]") {
  StatusData d = WithWorkloads(1);
  const std::string hostile = "<script>alert(\"x\")</script>&'";
  d.workloads[0].name = "evil/" + hostile;
  d.trust_domain = hostile;
  d.roots.push_back({hostile, "AA:BB", "", kNow + 24h * 365});
  d.events.push_back({kNow, "refused", {{"reason", hostile}, {"caller", hostile}}});
  const std::string html = RenderStatusHtml(d);
  CHECK(html.find("<script") == std::string::npos);
  CHECK(html.find("&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&amp;&#39;") !=
        std::string::npos);
  CHECK(HtmlEscape("a<b>&\"'") == "a&lt;b&gt;&amp;&quot;&#39;");
  // The JSON carries the raw strings, safely encoded.
  const auto j = nlohmann::json::parse(RenderStatusJson(d));
  CHECK(j["certificates"][0]["service_account"] == "evil/" + hostile);
}

TEST_CASE("status page: certificates are listed soonest expiry first", "[status]") {
  StatusData d;
  d.now = kNow;
  d.workloads = {{"ns/late", "1", kNow, kNow + 20h, kNow + 10h},
                 {"ns/first", "2", kNow, kNow + 1h, kNow + 30min},
                 {"ns/middle", "3", kNow, kNow + 5h, kNow + 2h}};
  const std::string html = RenderStatusHtml(d);
  const size_t first = html.find("data-sa=\"ns/first\"");
  const size_t middle = html.find("data-sa=\"ns/middle\"");
  const size_t late = html.find("data-sa=\"ns/late\"");
  REQUIRE(first != std::string::npos);
  CHECK(first < middle);
  CHECK(middle < late);
  const auto j = nlohmann::json::parse(RenderStatusJson(d));
  CHECK(j["certificates"][0]["service_account"] == "ns/first");
  CHECK(j["certificates"][2]["service_account"] == "ns/late");
  // The outage budget is the soonest expiry.
  CHECK(OutageBudget(d) == Duration(1h));
  CHECK(j["outage_budget_seconds"] == 3600);
  CHECK(html.find("1h0m") != std::string::npos);
}

TEST_CASE("status page: one chart mark per certificate up to the cap, buckets beyond", "[status]") {
  CHECK(Count(RenderStatusHtml(WithWorkloads(0)), "class=\"mark") == 0);
  CHECK(Count(RenderStatusHtml(WithWorkloads(1)), "class=\"mark\"") == 1);
  CHECK(Count(RenderStatusHtml(WithWorkloads(300)), "class=\"mark\"") == 300);
  CHECK(Count(RenderStatusHtml(WithWorkloads(kMaxChartMarks)), "class=\"mark\"") == kMaxChartMarks);
  const std::string big = RenderStatusHtml(WithWorkloads(5000));
  CHECK(Count(big, "class=\"mark\"") == 0);
  const size_t buckets = Count(big, "class=\"mark bucket\"");
  CHECK(buckets >= 1);
  CHECK(buckets <= kChartBuckets);
  // The table is capped too; the JSON lists everything.
  CHECK(Count(big, "<tr data-sa=") + Count(big, "<tr class=\"soon\" data-sa=") == kMaxTableRows);
  CHECK(big.size() < 600'000);
  CHECK(nlohmann::json::parse(RenderStatusJson(WithWorkloads(5000)))["certificates"].size() ==
        5000);
}

TEST_CASE("status page: the rotation stage, next transition and gate are spelled out", "[status]") {
  StatusData d = WithWorkloads(2);
  StatusTrust t;
  t.stage = "prepared";
  t.bundle_generation = 3;
  t.action = "activate";
  t.gate = "certificates-without-new-root";
  t.next_transition = kNow + 6h;
  t.objects_updated = 2;
  t.objects_total = 2;
  d.trust = t;
  const std::string html = RenderStatusHtml(d);
  CHECK(html.find("Stage: prepared") != std::string::npos);
  CHECK(html.find(StageText("prepared")) != std::string::npos);
  CHECK(html.find(FormatRfc3339(kNow + 6h) + " (in 6h0m)") != std::string::npos);
  CHECK(html.find(GateText("certificates-without-new-root")) != std::string::npos);
  CHECK(html.find("2 of 2 objects") != std::string::npos);
  const auto j = nlohmann::json::parse(RenderStatusJson(d));
  CHECK(j["trust"]["stage"] == "prepared");
  CHECK(j["trust"]["next_transition"] == FormatRfc3339(kNow + 6h));
  CHECK(j["trust"]["gate"] == "certificates-without-new-root");

  d.trust->stage = "stable";
  d.trust->action = "none";
  d.trust->gate = "none";
  d.trust->next_transition.reset();
  const std::string stable = RenderStatusHtml(d);
  CHECK(stable.find("Stage: stable") != std::string::npos);
  CHECK(stable.find("no transition pending") != std::string::npos);
}

TEST_CASE("status page: issuances and refusals with their reasons, newest first", "[status]") {
  StatusData d = WithWorkloads(1);
  d.events = {{kNow - 2min, "issued", {{"spiffe_id", "spiffe://cluster.local/ns/a/sa/old"}}},
              {kNow - 1min, "issued", {{"spiffe_id", "spiffe://cluster.local/ns/a/sa/new"}}},
              {kNow, "refused", {{"code", "PermissionDenied"}, {"reason", "token audience"}}}};
  const std::string html = RenderStatusHtml(d);
  CHECK(html.find("reason=token audience") != std::string::npos);
  CHECK(html.find("code=PermissionDenied") != std::string::npos);
  CHECK(html.find("sa/new") < html.find("sa/old"));
  const auto j = nlohmann::json::parse(RenderStatusJson(d));
  CHECK(j["events"][0]["type"] == "refused");
  CHECK(j["events"][0]["fields"]["reason"] == "token audience");
}

TEST_CASE("status page: self-contained, phone-ready HTML", "[status]") {
  const std::string html = RenderStatusHtml(WithWorkloads(10));
  CHECK(html.rfind("<!DOCTYPE html>", 0) == 0);
  CHECK(html.find("name=\"viewport\"") != std::string::npos);
  // No external asset and no script: air-gapped clusters, no JavaScript needed.
  CHECK(html.find("<script") == std::string::npos);
  CHECK(html.find("src=") == std::string::npos);
  CHECK(html.find("href=\"http") == std::string::npos);
  CHECK(html.find("<link rel=\"stylesheet") == std::string::npos);
  CHECK(html.find("@import") == std::string::npos);
  CHECK(html.find("url(") == std::string::npos);
}
