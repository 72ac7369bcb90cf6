"""What runs beside training: the tracker that custom loops and both adapters drive, the stop rule,
the sudden-change detector, the history file, the metric sinks and the distributed helpers.

Framework-free: Lightning and the Trainer live in :mod:`fairness_callback.integrations`. Nothing is
imported here, so that :mod:`fairness_callback.probe` can use :mod:`.distributed` without a cycle.
"""

__all__: list[str] = []  # nothing here: import the modules
