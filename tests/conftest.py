"""Hypothesis profiles: ``ci`` (derandomized, the default of `make test`) and ``thorough`` (more examples)."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

_common = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
settings.register_profile("ci", derandomize=True, max_examples=40, print_blob=True, **_common)
settings.register_profile("thorough", max_examples=400, **_common)
settings.register_profile("dev", max_examples=10, **_common)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

import pytest  # noqa: E402
import torch  # noqa: E402

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.fixture(scope="session")
def docs_site(tmp_path_factory: pytest.TempPathFactory):
    """The documentation site, built once per session (executes the notebooks): see tests/_docs.py."""
    pytest.importorskip("sphinx")
    pytest.importorskip("myst_nb")
    from tests._docs import build_site

    return build_site(tmp_path_factory.mktemp("site"))


@pytest.fixture(params=DEVICES)
def device(request: pytest.FixtureRequest) -> str:
    """Tests that take ``device`` run on the CPU and, where one is present, on CUDA."""
    return request.param
