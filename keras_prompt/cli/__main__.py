"""`python -m keras_prompt.cli`."""

import sys

from keras_prompt.cli.main import main

sys.exit(main())
