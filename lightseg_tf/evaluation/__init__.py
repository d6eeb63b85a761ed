"""Evaluation: scoring at original resolution, biometry, GradCAM++, robustness, the HTML report,
the latency benchmark and the chain's clinical checks."""
