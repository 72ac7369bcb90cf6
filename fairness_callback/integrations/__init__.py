"""Training-framework adapters. Import the one you use; each needs its framework installed:

- :mod:`fairness_callback.integrations.hf` (``pip install fairness-callback[hf]``)
- :mod:`fairness_callback.integrations.lightning` (``pip install fairness-callback[lightning]``)
"""

__all__: list[str] = []  # nothing here: import the modules
