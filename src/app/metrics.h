// What the daemon counts, for `GET /metrics` (Prometheus text format 0.0.4).
// The rest of the code sees this small interface only; prometheus-cpp stays
// inside metrics.cpp. Metric names and labels carry no personal data.
//
//   tocsin_reports_total{outcome, status}   answers to POST /v1/reports:
//       outcome new_incident | merged | update | cancel | replayed | refused,
//       status the HTTP status answered (202, 401, 422, 503, ...)
//   tocsin_deliveries_total{gateway, channel, state}   deliveries that ended:
//       state sent | failed | expired (gateway "none": expired unsent)
//   tocsin_delivery_retries_total{gateway, channel}   transient failures
//   tocsin_store_queue_depth           store jobs waiting for the store thread
//   tocsin_deliveries_pending          deliveries in the store not yet ended
//   tocsin_deliveries_in_flight        requests now at gateways
//   tocsin_deliveries_held             deliveries leased and not yet recorded
//   tocsin_gateway_circuit_state{gateway, channel}   0 closed, 1 open, 2 half-open
//   tocsin_report_first_send_seconds{channel}   histogram: report accepted →
//       the first of its deliveries on the channel accepted by a gateway
//   tocsin_report_last_send_seconds{channel}    histogram: report accepted →
//       the last one, once none is pending (see DispatcherOptions::on_report_sent)
//   tocsin_config_reloads_total{result}   ok | refused
//   tocsin_http_refused_total{route, status}   4xx answers: route one of a
//       fixed set (see refused_route in api.cpp), status the HTTP status
//   tocsin_requests_ignored_total{reason}   signed requests that changed
//       nothing: already_applied | no_message_sid | join_not_mobile |
//       join_limit (see Ignored in core/refusals.h)
//   tocsin_http_connections_total{event}   admission: evicted | full |
//       per_address | accept_error | deadline (see http::ConnectionEvent)
//   tocsin_safety_steps_total{step}   held | released | escalated | covered
//       (README "Safety rules"), each exported at 0 from the start
//
// Counters are exported at 0 before their first event (for rate()): every
// configured gateway's deliveries (sent, failed, expired) and retries from
// the first render, reload results, accepted report outcomes (202) and
// every refusal of a report (400, 401, 403, 405, 415, 422, 500, 503), each
// route's signature or token refusal, the console's (401, 403, 415, 429),
// the JSON routes' 400 and 415 and the HTTP parser's
// (tocsin_http_refused_total), every reason a signed request is ignored
// (tocsin_requests_ignored_total), every admission event
// (tocsin_http_connections_total), and both send-latency histograms for
// every channel.
//
// Thread-safe (prometheus-cpp's metrics are); the daemon uses it on its io
// thread.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/model.h"

namespace tocsin::app {

class Metrics {
 public:
  // Point-in-time values, read when /metrics is served.
  struct Gauges {
    int64_t store_queue_depth = 0;
    std::optional<int64_t> deliveries_pending;  // unknown when the store did not answer
    int64_t deliveries_in_flight = 0;
    int64_t deliveries_held = 0;
    struct Circuit {
      std::string gateway;
      Channel channel = Channel::kSms;
      int state = 0;  // 0 closed, 1 open, 2 half-open
    };
    std::vector<Circuit> circuits;  // every configured gateway; others are dropped
  };

  Metrics();
  ~Metrics();
  Metrics(const Metrics&) = delete;
  Metrics& operator=(const Metrics&) = delete;

  // A report was answered (see tocsin_reports_total above).
  void report_answered(std::string_view outcome, int status);
  // A gateway's answer to one delivery was decided: kSent, kFailed and
  // kExpired end it; kPending means it will be retried. `gateway` is empty
  // for a delivery that expired before it was sent. Other states are ignored.
  void delivery_result(std::string_view gateway, Channel channel, DeliveryState state);
  // Time from a report's acceptance to its first (`first`) or last send on
  // `channel`.
  void report_sent(Channel channel, bool first, double seconds);
  // A config reload was applied (`ok`) or refused.
  void config_reload(bool ok);
  // `n` safety-rule steps of kind `step` (held, released, escalated, covered).
  void safety_step(std::string_view step, int n);
  // A request was refused with a 4xx `status`; `route` is a bounded label.
  void http_refused(std::string_view route, int status);
  // A signed request changed nothing; `reason` is to_string(Ignored).
  void request_ignored(std::string_view reason);
  // An admission event of the HTTP server ("evicted", "full", ...).
  void connection_event(std::string_view event);
  // Every metric, with `gauges` as the current values (an unknown one keeps
  // its last value), in Prometheus text format.
  std::string render(const Gauges& gauges);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace tocsin::app
