// `tocsin store copy --from SQLITE_CONFIG --to PG_CONFIG`: moves a network
// from its SQLite file to PostgreSQL (README "Several instances, for
// operators"). Exit codes: 0 copied, 1 refused or failed (nothing written),
// 2 bad arguments or an invalid config.
#pragma once

#include <string>

namespace tocsin::app {

int store_copy(const std::string& from_config, const std::string& to_config);

}  // namespace tocsin::app
