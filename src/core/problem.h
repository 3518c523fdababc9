// RFC 9457 problem details: every refused request gets one, naming the field
// at fault, so a coordinator's system can tell what to fix. The HTTP
// rendering is http/problem_response.h.
#pragma once

#include <string>
#include <vector>

namespace tocsin {

struct Problem {
  int status = 400;
  std::string type;    // short slug, rendered as "urn:tocsin:problem:<type>"
  std::string title;   // one line, the same for every problem of this type
  std::string detail;  // what was wrong with this request (never personal data)
  std::string field;   // JSON path of the offending field ("location.lat"), or ""
  int retry_after_s = 0;  // > 0: also sent as a Retry-After header

  // Further fields at fault, for validation that reports everything at once.
  struct FieldError {
    std::string field;
    std::string detail;
  };
  std::vector<FieldError> errors;
};

// Shorthands for the common cases.
Problem bad_request(std::string detail, std::string field = {});
Problem unprocessable(std::string field, std::string detail);
// 403: the area (of `field`) lies outside the sender's areas.
Problem out_of_scope(std::string detail, std::string field);

}  // namespace tocsin
