"""`python -m lab ...`: see lab.cli."""
import sys

from .cli import main

sys.exit(main())
