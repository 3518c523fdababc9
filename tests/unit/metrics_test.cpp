// The metrics' text rendering: histograms and the circuit gauges that
// follow the configured gateways.
#include <catch2/catch.hpp>

#include "app/metrics.h"

using namespace tocsin;
using namespace tocsin::app;

namespace {

bool has_line(const std::string& text, const std::string& line) {
  return text.find("\n" + line + "\n") != std::string::npos;
}

}  // namespace

TEST_CASE("metrics: send-latency histograms per channel", "[metrics]") {
  Metrics m;
  m.report_sent(Channel::kSms, true, 0.3);
  m.report_sent(Channel::kSms, false, 4.2);
  m.report_sent(Channel::kSms, false, 700);
  auto text = m.render({});
  INFO(text);
  CHECK(has_line(text, "tocsin_report_first_send_seconds_count{channel=\"sms\"} 1"));
  CHECK(has_line(text, "tocsin_report_first_send_seconds_bucket{channel=\"sms\",le=\"0.25\"} 0"));
  CHECK(has_line(text, "tocsin_report_first_send_seconds_bucket{channel=\"sms\",le=\"0.5\"} 1"));
  CHECK(has_line(text, "tocsin_report_last_send_seconds_count{channel=\"sms\"} 2"));
  CHECK(has_line(text, "tocsin_report_last_send_seconds_bucket{channel=\"sms\",le=\"5\"} 1"));
  CHECK(has_line(text, "tocsin_report_last_send_seconds_bucket{channel=\"sms\",le=\"1800\"} 2"));
  // Every channel's histograms exist from the start, at 0.
  for (const char* channel : {"email", "voice", "signal"})
    for (const char* which : {"first", "last"}) {
      CHECK(has_line(text, std::string("tocsin_report_") + which +
                               "_send_seconds_count{channel=\"" + channel + "\"} 0"));
      CHECK(has_line(text, std::string("tocsin_report_") + which +
                               "_send_seconds_bucket{channel=\"" + channel + "\",le=\"0.1\"} 0"));
    }
}

TEST_CASE("metrics: circuit gauges follow the gateways a reload leaves", "[metrics]") {
  Metrics m;
  Metrics::Gauges g;
  g.circuits = {{"a", Channel::kSms, 1}, {"b", Channel::kEmail, 0}};
  auto text = m.render(g);
  CHECK(has_line(text, "tocsin_gateway_circuit_state{channel=\"sms\",gateway=\"a\"} 1"));
  CHECK(has_line(text, "tocsin_gateway_circuit_state{channel=\"email\",gateway=\"b\"} 0"));
  g.circuits = {{"a", Channel::kSms, 2}};
  text = m.render(g);
  CHECK(has_line(text, "tocsin_gateway_circuit_state{channel=\"sms\",gateway=\"a\"} 2"));
  // The gauge goes with the gateway (its counters stay: a counter never goes back).
  CHECK(text.find("tocsin_gateway_circuit_state{channel=\"email\",gateway=\"b\"}") == std::string::npos);
}

TEST_CASE("metrics: counters are exported at 0 before their first event", "[metrics]") {
  Metrics m;
  Metrics::Gauges g;
  g.circuits = {{"a", Channel::kSms, 0}, {"b", Channel::kEmail, 0}};
  auto text = m.render(g);
  INFO(text);
  for (const char* state : {"sent", "failed", "expired"}) {
    CHECK(has_line(text, std::string("tocsin_deliveries_total{channel=\"sms\",gateway=\"a\",state=\"") +
                             state + "\"} 0"));
    CHECK(has_line(text, std::string("tocsin_deliveries_total{channel=\"email\",gateway=\"b\",state=\"") +
                             state + "\"} 0"));
  }
  CHECK(has_line(text, "tocsin_deliveries_total{channel=\"sms\",gateway=\"none\",state=\"expired\"} 0"));
  CHECK(has_line(text, "tocsin_delivery_retries_total{channel=\"sms\",gateway=\"a\"} 0"));
  CHECK(has_line(text, "tocsin_delivery_retries_total{channel=\"email\",gateway=\"b\"} 0"));
  CHECK(has_line(text, "tocsin_config_reloads_total{result=\"ok\"} 0"));
  CHECK(has_line(text, "tocsin_config_reloads_total{result=\"refused\"} 0"));
  CHECK(has_line(text, "tocsin_reports_total{outcome=\"new_incident\",status=\"202\"} 0"));
  CHECK(has_line(text, "tocsin_reports_total{outcome=\"refused\",status=\"401\"} 0"));
  CHECK(has_line(text, "tocsin_http_refused_total{route=\"/v1/reports\",status=\"401\"} 0"));
  CHECK(has_line(text, "tocsin_http_refused_total{route=\"/v1/inbound/twilio\",status=\"403\"} 0"));
  CHECK(has_line(text, "tocsin_http_refused_total{route=\"/v1/receipts/sendgrid\",status=\"403\"} 0"));
  CHECK(has_line(text, "tocsin_http_refused_total{route=\"(http)\",status=\"400\"} 0"));
  // Every status a report can be refused with, and every refusal a flood
  // makes: of the console (failed, cross-site, throttled) and of the JSON
  // routes' strict input.
  for (const char* status : {"400", "401", "403", "405", "415", "422", "500", "503"})
    CHECK(has_line(text, std::string("tocsin_reports_total{outcome=\"refused\",status=\"") +
                             status + "\"} 0"));
  for (const char* status : {"401", "403", "415", "429"})
    CHECK(has_line(text, std::string("tocsin_http_refused_total{route=\"/console\",status=\"") +
                             status + "\"} 0"));
  for (const char* route : {"/v1/reports", "/v1/subscribers", "/v1/receipts/sendgrid"})
    for (const char* status : {"400", "415"})
      CHECK(has_line(text, std::string("tocsin_http_refused_total{route=\"") + route +
                               "\",status=\"" + status + "\"} 0"));
  for (const char* reason : {"already_applied", "no_message_sid", "join_not_mobile", "join_limit"})
    CHECK(
        has_line(text, std::string("tocsin_requests_ignored_total{reason=\"") + reason + "\"} 0"));
  for (const char* event : {"evicted", "full", "per_address", "accept_error", "deadline"})
    CHECK(has_line(text, std::string("tocsin_http_connections_total{event=\"") + event + "\"} 0"));
  // An event counts on the series that was there; a removed gateway's
  // counters stay.
  m.delivery_result("a", Channel::kSms, DeliveryState::kPending);
  m.config_reload(false);
  m.http_refused("/v1/reports", 401);
  m.connection_event("evicted");
  g.circuits = {{"b", Channel::kEmail, 0}};
  text = m.render(g);
  CHECK(has_line(text, "tocsin_delivery_retries_total{channel=\"sms\",gateway=\"a\"} 1"));
  CHECK(has_line(text, "tocsin_config_reloads_total{result=\"refused\"} 1"));
  CHECK(has_line(text, "tocsin_http_refused_total{route=\"/v1/reports\",status=\"401\"} 1"));
  CHECK(has_line(text, "tocsin_http_connections_total{event=\"evicted\"} 1"));
  CHECK(has_line(text, "tocsin_deliveries_total{channel=\"sms\",gateway=\"a\",state=\"failed\"} 0"));
}
