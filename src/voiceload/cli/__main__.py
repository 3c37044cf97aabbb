"""``python -m voiceload.cli <command>``: the same as the ``voiceload`` command."""

import sys

from voiceload.cli import main

sys.exit(main())
