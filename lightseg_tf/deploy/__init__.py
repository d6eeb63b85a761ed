"""Deployment: TFLite conversion with a model card, the checked TFLite runtime, golden vectors,
model statistics (parameters, FLOPs, latency), and the MediaPipe variant with TFLite Model Metadata."""
