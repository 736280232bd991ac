from setuptools import find_packages, setup

setup(
    name="crypto_assets",
    version="0.1.0",
    description="Every Binance spot trade per minute, proven complete, as Dagster assets and dbt analytics.",
    python_requires=">=3.11",
    # crypto_assets, and binance_simulator (the offline exchange for the tests and `make demo`): installed here, left
    # out of the production image (deploy/Dockerfile copies crypto_assets alone)
    packages=find_packages(exclude=["crypto_assets_tests*", "bench*"]),
    install_requires=[
        # Dagster core and its libraries release in lockstep (1.13.N <-> 0.29.N): pin them together, or pip
        # mixes versions whose internal APIs disagree. 1.13.27 is what was verified offline on these machines.
        "dagster==1.13.27",
        "dagster-webserver==1.13.27",
        "dagster-aws==0.29.27",
        "dagster-dbt==0.29.27",
        # the warehouse_io_manager (silver and gold tables for downstream assets) is Dagster's DuckDB integration
        "dagster-duckdb==0.29.27",
        # The production instance's storage (deploy/dagster.yaml: PostgreSQL through psycopg2).
        "dagster-postgres==0.29.27",
        # dbt-core 1.12 depends on dbt-core-experimental-parser, whose build downloads a wheel from the
        # internet: it cannot be installed offline. Dagster's own production project pins 1.11 as well.
        "dbt-core>=1.11,<1.12",
        "dbt-duckdb>=1.11,<1.12",
        # dbt reads the lake through DuckDB (imported directly for read-only queries); s3:// lakes through
        # fsspec/s3fs registered in DuckDB (its httpfs extension would be downloaded at run time: no network here).
        # boto3 is left to the resolver (s3fs's aiobotocore picks the 1.43.x line).
        "duckdb>=2.0",
        "s3fs>=2025.1",
        "websocket-client>=1.8",
        # Typed, fast JSON decoding of stream frames (several times faster than json + dataclasses).
        "msgspec>=0.19",
        "requests>=2.31",
        # the capture process's metrics endpoint (crypto_assets/ingest/metrics.py): the official Prometheus client
        "prometheus_client>=0.20",
        "numpy>=2.0",
        "pandas>=2.2",
        "pyarrow>=17",
        "python-dotenv>=1.0",
        # candle charts in the gold assets' metadata
        "matplotlib>=3.8",
    ],
    extras_require={
        "dev": [
            "pytest>=8",
            "pytest-timeout>=2.3",
            "pytest-xdist>=3.5",  # `make test` runs the suite on several workers
            # lint and format, run by `make test` before pytest; pinned because formatting changes between releases
            "ruff==0.17.6",
            "hypothesis>=6.100",
            # A real S3 server on 127.0.0.1 for the lake's S3 tests (ThreadedMotoServer), not mocks.
            "moto[server]>=5.0",
            # deploy/dagster.yaml's run launcher, whose config the deploy tests check against its own schema
            "dagster-docker==0.29.27",
        ],
    },
)
