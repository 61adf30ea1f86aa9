"""spark-submit entry point of the feature pipeline (incremental run, backfill with --start/--end).

    spark-submit jobs/feature_pipeline.py --system flights --profile cluster --home /shared/lakehouse [options]

Takes the same options as `fti features`; uses the session spark-submit provides. No logic here.
"""

import sys

from fti.cli import main

if __name__ == "__main__":
    sys.exit(main(["features", *sys.argv[1:]]))
