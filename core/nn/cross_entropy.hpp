// Softmax cross-entropy over rows of logits, with an ignore index, fused with its gradient.
#pragma once

#include <cstdint>

namespace expt::nn {

struct CrossEntropyStats {
  double loss_sum = 0;       // sum over counted rows of -log softmax(logits)[target]
  std::int64_t count = 0;    // rows with a target != ignore_index
  std::int64_t correct = 0;  // counted rows whose argmax (first maximum) equals the target
};

// logits [N, V] row-major, targets [N]. Rows with targets[i] == ignore_index are skipped; any other
// target outside [0, V) throws std::out_of_range. Log-sum-exp with the row maximum subtracted, sums
// in double.
// If dlogits != nullptr: dlogits[i] = grad_scale * (softmax(logits[i]) - onehot(target_i)) for
// counted rows, 0 for ignored rows.
// If correct != nullptr: correct[i] = (argmax == target) for counted rows, 1 for ignored rows (an
// unlabeled position never breaks a sequence).
template <class T>
CrossEntropyStats cross_entropy(const T* logits, const std::int32_t* targets, int N, int V, int ignore_index,
                                T* dlogits, T grad_scale, std::uint8_t* correct);

}  // namespace expt::nn
