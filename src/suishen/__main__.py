import sys

from suishen.cli import main

sys.exit(main())
