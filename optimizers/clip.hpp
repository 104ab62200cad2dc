// Global-norm gradient clipping (docs/config.md `train.grad_clip`): with N = sqrt(Σ over all buffers Σ g²), computed
// in double, if N > c then every gradient is multiplied by c/N, so the clipped global norm is c.
// Works on raw gradient spans: the parameter store's flat gradient buffer is one span, per-
// parameter gradients are several.
#pragma once

#include <span>

namespace expt::optim {

// Σ g² accumulated in double (a data-parallel shard can all-reduce this before taking the root).
double squared_norm(std::span<const float> grads);

// Clips the buffers jointly to global norm max_norm and returns the norm before clipping.
// max_norm <= 0 disables clipping (the norm is still returned). A non-finite norm leaves the
// gradients unchanged, so the caller sees the NaN/inf and can mark the run diverged.
double clip_grad_norm(std::span<const std::span<float>> buffers, double max_norm);
double clip_grad_norm(std::span<float> grads, double max_norm);

}  // namespace expt::optim
