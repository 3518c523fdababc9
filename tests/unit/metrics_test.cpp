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
  CHECK(text.find("channel=\"email\"") == std::string::npos);
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
  CHECK(text.find("gateway=\"b\"") == std::string::npos);
}
