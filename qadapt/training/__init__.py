"""Training loops: the LM loop (lm.py), the classifier loop (classifier.py), local distillation (distill.py)."""
