"""Evals (/v1/evals) and the fine-tuning graders endpoints (/v1/fine_tuning/alpha/graders)."""
