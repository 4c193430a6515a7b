"""Synthetic data generation: teacher backends (``llm``), prompt templates, flows, the stage-major runner and mixing."""
