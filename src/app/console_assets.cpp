// The console's CSS and ES module, compiled into the binary: CMake turns
// src/app/console_assets/app.{css,js} into string literals
// (build/console_assets.inc), so the files stay plain files to edit.
#include "app/console_impl.h"

namespace tocsin::app::console {

namespace {
#include "console_assets.inc"
}  // namespace

std::string_view asset_css() { return {kAppCss, sizeof kAppCss - 1}; }
std::string_view asset_js() { return {kAppJs, sizeof kAppJs - 1}; }

}  // namespace tocsin::app::console
