#include "core/problem.h"

namespace tocsin {

Problem bad_request(std::string detail, std::string field) {
  return Problem{.status = 400,
                 .type = "malformed",
                 .title = "Malformed request",
                 .detail = std::move(detail),
                 .field = std::move(field)};
}

Problem out_of_scope(std::string detail, std::string field) {
  return Problem{.status = 403,
                 .type = "out-of-scope",
                 .title = "Area outside the coordinator's scope",
                 .detail = std::move(detail),
                 .field = std::move(field)};
}

Problem unprocessable(std::string field, std::string detail) {
  return Problem{.status = 422,
                 .type = "invalid-field",
                 .title = "Invalid field",
                 .detail = std::move(detail),
                 .field = std::move(field)};
}

}  // namespace tocsin
