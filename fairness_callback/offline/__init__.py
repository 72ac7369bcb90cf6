"""After training: replay saved checkpoints through the probe, replay a stop rule on a history,
and write the report (trade-off table, figures); plus loading a saved model for the probe."""

__all__: list[str] = []  # nothing here: import the modules
