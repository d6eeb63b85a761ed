"""Training: the trainer, the teacher cache, ensemble voting and its weight search, distillation,
QAT fine-tuning and hyper-parameter search."""
