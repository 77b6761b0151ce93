"""`python -m media serve --config PATH`: run a media node (camera relays, meeting rooms)."""

from __future__ import annotations

import sys

from media.node.cli import main

sys.exit(main())
