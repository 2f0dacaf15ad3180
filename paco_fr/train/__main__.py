"""`python -m paco_fr.train --corpus DIR --regions DIR --out DIR [...]` (what torchrun launches)."""

import sys

from paco_fr.train.cli import main

sys.exit(main())
