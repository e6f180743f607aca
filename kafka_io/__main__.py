"""`python -m kafka_io replay ...`: the runtime CLI where the dev package is absent (the image)."""

import sys

from kafka_io.cli import main

sys.exit(main())
