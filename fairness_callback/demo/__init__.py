"""The demo: bias emerging live in a small model trained on a skewed corpus, caught by the callback."""

__all__: list[str] = []  # nothing here: import the modules
