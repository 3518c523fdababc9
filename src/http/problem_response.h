// Renders a core Problem as an HTTP answer: RFC 9457 application/problem+json,
// with Retry-After when the problem carries one. The core says what went
// wrong; this file owns how HTTP spells it.
#pragma once

#include "core/problem.h"
#include "http/message.h"

namespace tocsin {

// application/problem+json rendering of `p`.
http::Response to_response(const Problem& p);

}  // namespace tocsin
