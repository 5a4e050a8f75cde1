"""Fine-tuning a BERT-family classifier with transformers' Trainer.

One entry, :func:`training.entry.train`, for any number of processes.
"""
