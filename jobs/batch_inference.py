"""spark-submit entry point of the batch inference (score --as-of T into the prediction table).

    spark-submit jobs/batch_inference.py --system flights --profile cluster --home /shared/lakehouse [options]

Takes the same options as `fti score`; uses the session spark-submit provides. No logic here.
"""

import sys

from fti.cli import main

if __name__ == "__main__":
    sys.exit(main(["score", *sys.argv[1:]]))
