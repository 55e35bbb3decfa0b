"""``python -m reproduce``: list, run or smoke-test a reproduction profile."""

import sys

from .paper import main

sys.exit(main())
