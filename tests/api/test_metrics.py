"""/metrics: the pipeline's own lags, for platform staff only."""

from __future__ import annotations

import re

from tests.api.conftest import Api


async def test_metrics_report_projection_lag_and_need_staff(api: Api) -> None:
    owner = await api.tenant("m")
    assert (await owner.get("/metrics")).status == 403
    await api.settled(await owner.post("/v1/projects", json={"name": "p"}))
    response = await api.admin.get("/metrics")
    assert response.status == 200
    text = await response.text()
    head = int(re.search(r"^scloud_store_head_position (\d+)", text, re.M).group(1))  # type: ignore[union-attr]
    assert head == await api.platform.store.last_position() or head > 0
    lags = dict(re.findall(r'scloud_projection_lag_events\{projection="(\w+)"\} (-?\d+)', text))
    assert set(lags) >= {"resource_documents", "audit_log", "resource_index"}
    assert all(int(v) >= 0 for v in lags.values())
    # The API runs no relay here, so the relay gauge may be absent; if present it is sane.
    for value in re.findall(r"^scloud_relay_lag_events (-?\d+)", text, re.M):
        assert int(value) >= 0


async def test_metrics_text_parses_with_the_prometheus_parser(api: Api) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    response = await api.admin.get("/metrics")
    assert response.status == 200 and response.content_type == "text/plain"
    families = {f.name: f for f in text_string_to_metric_families(await response.text())}
    assert families["scloud_store_head_position"].type == "gauge"
    projections = {s.labels["projection"] for s in families["scloud_projection_lag_events"].samples}
    assert {"resource_documents", "audit_log"} <= projections
