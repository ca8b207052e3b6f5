"""``python -m facecompare.cli``."""

import sys

from . import main

sys.exit(main())
