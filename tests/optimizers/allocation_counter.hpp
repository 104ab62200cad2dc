// Counts global operator new calls between start() and stop(), to check that hot paths such as
// Optimizer::step allocate nothing. The replacement operators live in allocation_counter.cpp, a
// translation unit of their own so the compiler never sees them inlined next to library code.
#pragma once

namespace expt::test {

void start_counting_allocations();
// Returns the number of operator new calls since start_counting_allocations().
long stop_counting_allocations();

}  // namespace expt::test
