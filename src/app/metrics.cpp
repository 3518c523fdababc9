#include "app/metrics.h"

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

namespace tocsin::app {

using prometheus::BuildCounter;
using prometheus::BuildGauge;

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
};

Metrics::Metrics() : impl_(std::make_unique<Impl>()) {}
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

std::string Metrics::render(const Gauges& gauges) {
  impl_->queue_depth.Set(static_cast<double>(gauges.store_queue_depth));
  if (gauges.deliveries_pending)
    impl_->pending.Set(static_cast<double>(*gauges.deliveries_pending));
  impl_->in_flight.Set(static_cast<double>(gauges.deliveries_in_flight));
  impl_->held.Set(static_cast<double>(gauges.deliveries_held));
  return prometheus::TextSerializer().Serialize(impl_->registry.Collect());
}

}  // namespace tocsin::app
