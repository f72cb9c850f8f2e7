import sys

from newsflow_cli.demo.server import main

sys.exit(main())
