import sys

from lightseg_tf.cli import main

sys.exit(main())
