"""``labrador-trainer evaluate``: base vs tuned (MCQ log-likelihood, held-out loss, judged answers, forgetting) and
best-checkpoint selection. See docs/evaluation.md for the measures and formulas."""
