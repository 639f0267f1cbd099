"""The benchmark suite, built on the library and above it (nothing in the library imports it): the benchmark's own
models and their loaders (`suite.models`), the built-in task families with ground truth, their registry and task cards
(`suite.tasks`), and sweeps with their records, resume, lock, summaries and plots (`suite.bench`)."""
