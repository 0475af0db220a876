"""Fine-tuning jobs: validated files, an emulated training run with a real lifecycle, fine-tuned models."""
