"""``python -m datagen.export DIR --format folders|hf --out OUT`` (see ``datagen.export.cli``)."""

import sys

from datagen.export.cli import main

sys.exit(main())
