"""``python -m fairness_callback ...``: the command line (what ``torchrun -m fairness_callback replay ...`` runs on each rank)."""

import sys

from .cli import main

sys.exit(main())
