from __future__ import annotations

import sys

from floatingip.cli import main

sys.exit(main())
