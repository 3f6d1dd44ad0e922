import sys

from ponder.cli import main

sys.exit(main())
