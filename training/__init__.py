"""Fine-tuning a BERT-family classifier with transformers' Trainer."""
