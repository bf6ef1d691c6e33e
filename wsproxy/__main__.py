import sys

from wsproxy.daemon import main

sys.exit(main())
