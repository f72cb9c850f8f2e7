import sys

from newsflow_devtools.demo.server import main

sys.exit(main())
