"""Lakes for the lake's tests: a local folder, and S3 on a real moto server on 127.0.0.1 (the root conftest's
``moto_endpoint``; no mocks in process)."""

from __future__ import annotations

import pytest

from crypto_assets.lake import LocalLake, S3Lake


@pytest.fixture(params=["local", "s3"])
def lake(request, tmp_path):
    if request.param == "local":
        return LocalLake(tmp_path / "lake")
    bucket = request.getfixturevalue("s3_bucket")
    return S3Lake(bucket, "some/prefix", endpoint_url=request.getfixturevalue("moto_endpoint"))
