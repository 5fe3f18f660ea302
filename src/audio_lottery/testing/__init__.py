"""Tools for the robustness tests and benchmarks: crash (kill-and-resume) checks and bad-input corpora."""
