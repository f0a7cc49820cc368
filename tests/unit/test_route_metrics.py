"""RouteMetricsMiddleware records exactly what Litestar's Prometheus
middleware records: same series, labels and counts (durations aside)."""

from __future__ import annotations

import pytest
from litestar import Litestar, get
from litestar.params import FromPath
from litestar.plugins.prometheus import PrometheusConfig, PrometheusMiddleware
from litestar.testing import AsyncTestClient
from prometheus_client import REGISTRY

from entrypoints.http.observability import RouteMetricsMiddleware


@get("/items/{item_id:int}", sync_to_thread=False)
def item(item_id: FromPath[int]) -> dict[str, int]:
    return {"id": item_id}


@get("/boom", sync_to_thread=False)
def boom() -> None:
    raise RuntimeError("broken on purpose")


@get("/skipped", sync_to_thread=False)
def skipped() -> str:
    return "not measured"


def _app(prefix: str, middleware: type[PrometheusMiddleware]) -> Litestar:
    config = PrometheusConfig(
        app_name=prefix,
        prefix=prefix,
        group_path=True,
        exclude=["^/skipped$"],
        middleware_class=middleware,
    )
    return Litestar([item, boom, skipped], middleware=[config.middleware], logging_config=None)


def _samples(prefix: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found = {}
    for metric in REGISTRY.collect():
        for sample in metric.samples:
            if sample.name.startswith(prefix) and not sample.name.endswith(("_sum", "_created")):
                labels = {**sample.labels, "app_name": "-"}
                name = sample.name.removeprefix(prefix)
                if "_bucket" in name:
                    continue  # which bucket depends on the duration
                found[(name, tuple(sorted(labels.items())))] = sample.value
    return found


async def test_the_same_series_as_litestars_middleware() -> None:
    recorded = {}
    for prefix, middleware in (
        ("stock_probe", PrometheusMiddleware),
        ("route_probe", RouteMetricsMiddleware),
    ):
        async with AsyncTestClient(_app(prefix, middleware)) as client:
            for path in ("/items/1", "/items/2", "/boom", "/items/x", "/nowhere", "/skipped"):
                await client.get(path)
            await client.post("/items/3")
        recorded[prefix] = _samples(prefix)
    assert recorded["route_probe"] == recorded["stock_probe"]
    counts = {
        dict(labels)["path"]: value
        for (name, labels), value in recorded["route_probe"].items()
        if name == "_requests_total" and dict(labels)["status_code"] == "200"
    }
    assert counts == {"/items/{item_id}": 2}
    errors = [key for key in recorded["route_probe"] if key[0] == "_requests_error_total"]
    assert len(errors) == 1


def test_options_it_does_not_implement_are_refused() -> None:
    config = PrometheusConfig(labels={"tier": "gold"}, middleware_class=RouteMetricsMiddleware)
    with pytest.raises(ValueError, match="no labels"):
        RouteMetricsMiddleware(item, config)  # type: ignore[arg-type]
