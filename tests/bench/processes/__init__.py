"""Processes the benchmarks start beside themselves: servers, simulated hosts. Not benchmarks
(``make bench`` runs only the modules directly in tests/bench)."""
