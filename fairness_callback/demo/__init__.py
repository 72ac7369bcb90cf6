"""The demo: bias emerging live in a small model trained on a skewed corpus, caught by the callback."""
