// An optimizer's state (optimizer_state.hpp's interfaces) kept in a loop::Checkpoint: tensors
// "<prefix>/<parameter>/<key>" and the header in state["<prefix>"]. A strategy's collective
// save/load_optimizer_state writes and reads through these (PreparedModel::save / load).
#pragma once
#include <memory>
#include <string>

#include "mpitrain/strategy/optimizer_state.hpp"
#include "mpitrain/train/loop/checkpoint.hpp"

namespace mpitrain::loop::detail {

std::unique_ptr<OptimizerStateWriter> optimizer_writer(Checkpoint& c, const std::string& prefix);
/// A reader whose present() is false when the checkpoint holds no state under `prefix`.
std::unique_ptr<OptimizerStateReader> optimizer_reader(const Checkpoint& c, const std::string& prefix);

}  // namespace mpitrain::loop::detail
