#include "app/metrics.h"

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

#include "core/refusals.h"
#include "http/server.h"

#include <map>
#include <utility>
#include <set>

namespace tocsin::app {

using prometheus::BuildCounter;
using prometheus::BuildGauge;
using prometheus::BuildHistogram;

namespace {

// From a fast fan-out (well under a second) to one held back by a provider's
// rate or an outage (minutes), up to the SMS deadline (30 min).
const prometheus::Histogram::BucketBoundaries& send_buckets() {
  static const prometheus::Histogram::BucketBoundaries b = {
      0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800};
  return b;
}

}  // namespace

struct Metrics::Impl {
  prometheus::Registry registry;
  prometheus::Family<prometheus::Counter>& reports =
      BuildCounter()
          .Name("tocsin_reports_total")
          .Help("Answers to POST /v1/reports, by outcome and HTTP status")
          .Register(registry);
  prometheus::Family<prometheus::Counter>& deliveries =
      BuildCounter()
          .Name("tocsin_deliveries_total")
          .Help("Deliveries that ended (sent, failed, expired), by gateway and channel")
          .Register(registry);
  prometheus::Family<prometheus::Counter>& retries =
      BuildCounter()
          .Name("tocsin_delivery_retries_total")
          .Help("Transient delivery failures scheduled again, by gateway and channel")
          .Register(registry);
  prometheus::Gauge& queue_depth = BuildGauge()
                                       .Name("tocsin_store_queue_depth")
                                       .Help("Store jobs waiting for the store thread")
                                       .Register(registry)
                                       .Add({});
  prometheus::Gauge& pending = BuildGauge()
                                   .Name("tocsin_deliveries_pending")
                                   .Help("Deliveries in the store that have not ended")
                                   .Register(registry)
                                   .Add({});
  prometheus::Gauge& in_flight = BuildGauge()
                                     .Name("tocsin_deliveries_in_flight")
                                     .Help("Requests now at gateways")
                                     .Register(registry)
                                     .Add({});
  prometheus::Gauge& held = BuildGauge()
                                .Name("tocsin_deliveries_held")
                                .Help("Deliveries leased and not yet recorded")
                                .Register(registry)
                                .Add({});
  prometheus::Family<prometheus::Gauge>& circuits =
      BuildGauge()
          .Name("tocsin_gateway_circuit_state")
          .Help("Each gateway's circuit breaker: 0 closed, 1 open, 2 half-open")
          .Register(registry);
  std::map<std::pair<std::string, std::string>, prometheus::Gauge*> circuit_gauges;
  std::set<std::pair<std::string, std::string>> counted;  // gateways whose counters exist
  prometheus::Family<prometheus::Histogram>& first_send =
      BuildHistogram()
          .Name("tocsin_report_first_send_seconds")
          .Help("Time from a report's acceptance to the first of its deliveries a gateway accepted")
          .Register(registry);
  prometheus::Family<prometheus::Histogram>& last_send =
      BuildHistogram()
          .Name("tocsin_report_last_send_seconds")
          .Help("Time from a report's acceptance to the last of its deliveries a gateway accepted")
          .Register(registry);
  prometheus::Family<prometheus::Counter>& reloads =
      BuildCounter()
          .Name("tocsin_config_reloads_total")
          .Help("Config reloads (SIGHUP, POST /-/reload), applied or refused")
          .Register(registry);
  prometheus::Family<prometheus::Counter>& safety =
      BuildCounter()
          .Name("tocsin_safety_steps_total")
          .Help("Safety-rule steps: groups held, released, escalated to others, covered")
          .Register(registry);
  prometheus::Family<prometheus::Counter>& refused =
      BuildCounter()
          .Name("tocsin_http_refused_total")
          .Help("Requests refused with a 4xx answer, by route and HTTP status")
          .Register(registry);
  prometheus::Family<prometheus::Counter>& ignored =
      BuildCounter()
          .Name("tocsin_requests_ignored_total")
          .Help(
              "Signed requests answered without changing anything (replays, texts not acted on), "
              "by reason")
          .Register(registry);
  prometheus::Family<prometheus::Counter>& connections =
      BuildCounter()
          .Name("tocsin_http_connections_total")
          .Help(
              "Connection admission: evicted for room, refused (full, per_address), accept "
              "errors, closed at the first-byte or header deadline")
          .Register(registry);
};

// Counters exist at 0 from the start, so that Prometheus' rate() and
// increase() see their first event (a series that appears at 1 counts as no
// increase): every reload result, the report outcomes an operator alerts on,
// and (see render) each configured gateway's deliveries and retries.
Metrics::Metrics() : impl_(std::make_unique<Impl>()) {
  for (const char* result : {"ok", "refused"}) impl_->reloads.Add({{"result", result}});
  for (const char* outcome : {"new_incident", "merged", "update", "cancel", "replayed"})
    impl_->reports.Add({{"outcome", outcome}, {"status", "202"}});
  // Every status POST /v1/reports can refuse with (405 a wrong method, 415
  // a body not typed JSON, 500 a defect, 503 the store).
  for (int status : {400, 401, 403, 405, 415, 422, 500, 503})
    impl_->reports.Add({{"outcome", "refused"}, {"status", std::to_string(status)}});
  for (Channel channel : kAllChannels) {  // histograms too: a first send is in the first rate()
    impl_->first_send.Add({{"channel", std::string(to_string(channel))}}, send_buckets());
    impl_->last_send.Add({{"channel", std::string(to_string(channel))}}, send_buckets());
  }
  for (Channel channel : kAllChannels)
    impl_->deliveries.Add({{"gateway", "none"}, {"channel", std::string(to_string(channel))},
                           {"state", std::string(to_string(DeliveryState::kExpired))}});
  for (const char* step : {"held", "released", "escalated", "covered"})
    impl_->safety.Add({{"step", step}});  // at 0 from the start, so rate() sees the first one
  // The refusals a flood or a scan makes (a missing or wrong signature or
  // token on each route that checks one, the console's failed and
  // throttled logins and cross-site posts, an unknown path, the HTTP
  // parser's own), the strict-input ones of the JSON routes (400 a
  // duplicate key or malformed body, 415 not typed JSON) and every
  // admission event, so an alert on rate() sees the first.
  static constexpr std::pair<const char*, int> kRefusals[] = {
      {"/v1/reports", 400},
      {"/v1/reports", 401},
      {"/v1/reports", 403},
      {"/v1/reports", 405},
      {"/v1/reports", 415},
      {"/v1/reports", 422},
      {"/console", 401},
      {"/console", 403},
      {"/console", 415},
      {"/console", 429},
      {"/v1/receipts/sendgrid", 400},
      {"/v1/receipts/sendgrid", 413},
      {"/v1/receipts/sendgrid", 415},
      {"/v1/subscribers", 400},
      {"/v1/subscribers", 415},
      {"/v1/receipts/twilio", 403},
      {"/v1/inbound/twilio", 403},
      {"/v1/inbound/twilio/voice/gather", 403},
      {"/v1/inbound/twilio/voice/status", 403},
      {"/v1/receipts/sendgrid", 403},
      {"/v1/subscribers", 401},
      {"/v1/incidents", 401},
      {"/v1/audit", 401},
      {"/-/reload", 401},
      {"other", 404},
      {"(http)", 400},
      {"(http)", 413},
      {"(http)", 431},
  };
  for (const auto& [route, status] : kRefusals)
    impl_->refused.Add({{"route", route}, {"status", std::to_string(status)}});
  for (Ignored why : kAllIgnored) impl_->ignored.Add({{"reason", std::string(to_string(why))}});
  for (auto e : {http::ConnectionEvent::kEvicted, http::ConnectionEvent::kFull,
                 http::ConnectionEvent::kPerAddress, http::ConnectionEvent::kAcceptError,
                 http::ConnectionEvent::kDeadline})
    impl_->connections.Add({{"event", http::to_string(e)}});
}

void Metrics::safety_step(std::string_view step, int n) {
  if (n > 0) impl_->safety.Add({{"step", std::string(step)}}).Increment(n);
}
Metrics::~Metrics() = default;

void Metrics::report_answered(std::string_view outcome, int status) {
  impl_->reports.Add({{"outcome", std::string(outcome)}, {"status", std::to_string(status)}})
      .Increment();
}

void Metrics::delivery_result(std::string_view gateway, Channel channel, DeliveryState state) {
  std::string gw = gateway.empty() ? "none" : std::string(gateway);
  std::string ch(to_string(channel));
  switch (state) {
    case DeliveryState::kSent:
    case DeliveryState::kFailed:
    case DeliveryState::kExpired:
      impl_->deliveries
          .Add({{"gateway", gw}, {"channel", ch}, {"state", std::string(to_string(state))}})
          .Increment();
      break;
    case DeliveryState::kPending:
      impl_->retries.Add({{"gateway", gw}, {"channel", ch}}).Increment();
      break;
    default:
      break;
  }
}

void Metrics::report_sent(Channel channel, bool first, double seconds) {
  (first ? impl_->first_send : impl_->last_send)
      .Add({{"channel", std::string(to_string(channel))}}, send_buckets())
      .Observe(seconds);
}

void Metrics::config_reload(bool ok) {
  impl_->reloads.Add({{"result", ok ? "ok" : "refused"}}).Increment();
}

void Metrics::http_refused(std::string_view route, int status) {
  impl_->refused.Add({{"route", std::string(route)}, {"status", std::to_string(status)}})
      .Increment();
}

void Metrics::request_ignored(std::string_view reason) {
  impl_->ignored.Add({{"reason", std::string(reason)}}).Increment();
}

void Metrics::connection_event(std::string_view event) {
  impl_->connections.Add({{"event", std::string(event)}}).Increment();
}

std::string Metrics::render(const Gauges& gauges) {
  // Gateways a reload removed disappear; the rest are set.
  auto& known = impl_->circuit_gauges;
  std::map<std::pair<std::string, std::string>, prometheus::Gauge*> now;
  for (const auto& c : gauges.circuits) {
    std::pair<std::string, std::string> key{c.gateway, std::string(to_string(c.channel))};
    auto it = known.find(key);
    prometheus::Gauge* g = it != known.end()
                               ? it->second
                               : &impl_->circuits.Add({{"gateway", key.first}, {"channel", key.second}});
    g->Set(c.state);
    now[key] = g;
    // Counters of a gateway stay after a reload removes it (counters never go back).
    if (impl_->counted.insert(key).second) {
      for (DeliveryState state : {DeliveryState::kSent, DeliveryState::kFailed, DeliveryState::kExpired})
        impl_->deliveries.Add(
            {{"gateway", key.first}, {"channel", key.second}, {"state", std::string(to_string(state))}});
      impl_->retries.Add({{"gateway", key.first}, {"channel", key.second}});
    }
  }
  for (auto& [key, g] : known)
    if (!now.count(key)) impl_->circuits.Remove(g);
  known = std::move(now);

  impl_->queue_depth.Set(static_cast<double>(gauges.store_queue_depth));
  if (gauges.deliveries_pending)
    impl_->pending.Set(static_cast<double>(*gauges.deliveries_pending));
  impl_->in_flight.Set(static_cast<double>(gauges.deliveries_in_flight));
  impl_->held.Set(static_cast<double>(gauges.deliveries_held));
  return prometheus::TextSerializer().Serialize(impl_->registry.Collect());
}

}  // namespace tocsin::app
