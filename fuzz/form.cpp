// Fuzz target: an x-www-form-urlencoded body, as Twilio posts inbound texts
// and status callbacks, and the reply text classified after it.
#include "core/form.h"

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "core/inbound.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  std::string_view body(reinterpret_cast<const char*>(data), size);
  auto fields = tocsin::parse_form(body);
  tocsin::twilio_signature("0123456789abcdef0123456789abcdef",
                           "https://example.org/v1/inbound/twilio", fields);
  tocsin::classify_sms_reply(tocsin::form_value(fields, "Body"));
  tocsin::classify_sms_reply(body);
  return 0;
}
