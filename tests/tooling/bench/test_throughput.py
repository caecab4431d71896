"""``make bench`` at toy sizes: it runs end to end and reports every figure.

No timing is asserted: the figures are the bench's output, not pass/fail timers. What is
asserted is that every image was edited, none paid twice and no rate-limit error reached a task.
"""

from __future__ import annotations

import json

from airflow_image_catalog.tooling.bench import throughput

TOY = ["--images", "16", "--latency", "0.05", "--rpm", "6000", "--compare-chunk-size", "4", "--memory-sizes", "16,32",
       "--sequential", "2", "--skip-dag", "--skip-startup-probe", "--quiet"]


def test_bench_reports_every_figure_at_toy_sizes(tmp_path, capsys):
    out = tmp_path / "throughput.json"
    assert throughput.main([*TOY, "--out", str(out)]) == 0
    result = json.loads(out.read_text())

    assert {"machine", "config", "startup", "throughput", "memory", "sequential", "figures", "notes",
            "bench_wall_s"} <= set(result)
    assert set(result["throughput"]) == {"dag_default", "fixed"}
    assert result["throughput"]["dag_default"]["chunk_size"] == 16  # the DAG's chunking: one chunk below 25 images
    assert result["throughput"]["fixed"]["chunk_size"] == 4
    peer = result["peer"]  # the asyncio script on the official SDK, against the same service
    assert peer["images"] == peer["performed"] == 16 and peer["failed"] == peer["duplicates"] == 0
    assert peer["throttled"] and not result["peer_naive"]["throttled"]  # paced at the limit, and the naive script
    assert result["peer_naive"]["images"] == 16
    for run in result["throughput"].values():
        assert run["images"] == run["edited"] == run["performed"] == 16
        assert run["failed"] == run["rate_limit_errors_in_tasks"] == run["duplicates"] == 0
        assert {"ratio", "achieved_rpm", "cpu_ms_per_image", "outside_backend_ms_per_image", "task_peak_rss_mb"} <= set(run)
    for size in (16, 32):
        assert result["memory"][str(size)]["edited"] == result["memory"][str(size)]["published"] == size
        assert result["memory"][str(size)]["peak_rss_mb"] > 0
    assert result["memory"]["service_duplicates"] == 0
    assert result["sequential"]["performed"] == 2 and result["sequential"]["duplicates"] == 0
    assert all(set(row) == {"figure", "value", "target", "result", "how"} for row in result["figures"])
    printed = capsys.readouterr().out  # the table
    assert "throughput, 16 images" in printed and "DAG default vs the peer, same run" in printed
