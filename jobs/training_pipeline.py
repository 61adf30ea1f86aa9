"""spark-submit entry point of the training pipeline (Ray Train XGBoost -> MLflow registry).

    spark-submit jobs/training_pipeline.py --system flights --profile cluster --home /shared/lakehouse [options]

Takes the same options as `fti train`; uses the session spark-submit provides. No logic here.
"""

import sys

from fti.cli import main

if __name__ == "__main__":
    sys.exit(main(["train", *sys.argv[1:]]))
