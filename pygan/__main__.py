"""``python -m pygan ...`` (also what ``torchrun -m pygan`` runs on every rank)."""

import sys

from pygan.cli import main

sys.exit(main())
