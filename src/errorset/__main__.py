import sys

from errorset.cli import main

sys.exit(main())
