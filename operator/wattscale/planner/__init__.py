"""Pure decision code: capacity, power and cost models, the optimiser and the guard-rails. No I/O."""
