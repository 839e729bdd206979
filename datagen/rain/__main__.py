"""``python -m datagen.rain sample ...`` (see ``datagen.rain.cli``)."""

import sys

from datagen.rain.cli import main

sys.exit(main())
