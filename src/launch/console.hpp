// The driver's default view of its workers' messages on stderr (LaunchOptions::on_message unset).
#pragma once
#include <nlohmann/json.hpp>

namespace mpitrain::detail {

/// Log lines as "[rank r] ..."; progress reports carrying a "line" redrawn in place on a terminal,
/// one line per report otherwise (Slurm logs). Other messages are not shown.
void default_message_handler(const nlohmann::json& m);

}  // namespace mpitrain::detail
