"""Training objectives, pure maths: segmentation losses on logits and per-image metrics."""
