"""The benchmark harness (lesson 10): interleaving, statistics, the stamped report, the CLI, the doctor."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from llmkit import bench, doctor
from llmkit.bench import Report, interleave, percentile, round_orders, summarize


def test_round_orders_put_every_contender_in_every_position_equally():
    orders = round_orders(["a", "b", "c"], 12)
    for name in "abc":
        positions = [order.index(name) for order in orders]
        assert sorted(positions.count(p) for p in range(3)) == [4, 4, 4]
    assert round_orders(["a", "b"], 4) == [["a", "b"], ["b", "a"], ["b", "a"], ["a", "b"]]


def test_interleave_alternates_calls_and_drift_lands_on_both():
    calls: list[str] = []
    clock = [0.0]

    def timer() -> float:
        return clock[0]

    def contender(name: str):
        def go() -> None:
            calls.append(name)
            clock[0] += 1.0 + 0.1 * len(calls)  # every call is slower than the last: machine drift
        return go

    samples = interleave({"a": contender("a"), "b": contender("b")}, rounds=20, warmup=1, timer=timer)
    assert calls[:2] == ["a", "b"]  # warm-up, untimed
    timed = calls[2:]
    assert all({timed[i], timed[i + 1]} == {"a", "b"} for i in range(0, 40, 2))  # each round runs both
    # Both contenders are identical, so with interleaving drift shows up on both alike
    assert abs(sum(samples["a"]) - sum(samples["b"])) / sum(samples["a"]) < 0.05
    # ... whereas running all of a, then all of b, would make b look much slower
    assert sum(samples["b"][:10]) < sum(samples["b"][10:])


def test_interleave_number_divides_and_self_timed_uses_returned_values():
    clock = [0.0]
    samples = interleave({"x": lambda: clock.__setitem__(0, clock[0] + 2.0)}, rounds=3, warmup=0, number=4,
                         timer=lambda: clock[0])
    assert samples["x"] == [2.0, 2.0, 2.0]
    values = iter([0.5, 0.25, 0.75])
    assert interleave({"y": lambda: next(values)}, rounds=3, warmup=0, self_timed=True)["y"] == [0.5, 0.25, 0.75]
    with pytest.raises(ValueError):
        interleave({"z": lambda: None}, rounds=0)


def test_summarize_matches_definitions():
    values = [float(v) for v in range(1, 101)]  # 1..100
    s = summarize(values)
    assert s.n == 100 and s.median == 50.5 and s.min == 1 and s.max == 100
    assert s.p90 == pytest.approx(90.1)  # linear interpolation between closest ranks
    assert s.iqr == pytest.approx(percentile(values, 75) - percentile(values, 25)) == pytest.approx(49.5)
    assert s.spread == pytest.approx(49.5 / 50.5)
    assert summarize([3.0]).p90 == 3.0
    with pytest.raises(ValueError, match="at least one"):
        summarize([])


def test_report_ratios_json_stamp_and_round_trip(tmp_path):
    r = Report(quick=True)
    r.add("s", "case", "fast", [1.0, 2.0, 3.0], baseline="slow")
    r.add("s", "case", "slow", [4.0, 6.0, 8.0], baseline="slow")
    r.skip("memory", "llmkit.memory not available")
    df = r.df()
    assert list(df["ratio"]) == [pytest.approx(2 / 6), 1.0]
    path = r.save(tmp_path / "out" / "results.json")
    data = json.loads(path.read_text())
    assert data["meta"]["machine"]["cpu_count"] >= 1
    assert data["meta"]["python"]["version"].startswith(f"{sys.version_info.major}.{sys.version_info.minor}")
    assert data["meta"]["packages"]["openai"] and data["meta"]["quick"] is True
    assert data["skipped"] == {"memory": "llmkit.memory not available"}
    again = Report.load(path)
    assert again.rows == r.rows and again.get("s", "case", "fast")["median"] == 2.0
    with pytest.raises(KeyError, match="fast"):
        again.get("s", "case", "missing")


def test_run_rejects_unknown_suites():
    with pytest.raises(ValueError, match="clients"):
        bench.run(["nope"])


def test_cli_bench_replay_quick_writes_json(tmp_path):
    out = tmp_path / "r.json"
    proc = subprocess.run([sys.executable, "-m", "llmkit.cli", "bench", "replay", "--quick", "--out", str(out)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "replay server" in proc.stdout and f"wrote {out}" in proc.stdout
    data = json.loads(out.read_text())
    rows = {(r["case"], r["contender"]): r for r in data["rows"]}
    bare, replay = rows[("small JSON answer", "bare ASGI app")], rows[("small JSON answer", "replay server")]
    assert bare["n"] == replay["n"] == 100 and replay["baseline"] == "bare ASGI app"
    pacing = rows[("pacing at speed 1", "whole stream, replayed / recorded")]
    assert 0.9 < pacing["median"] < 1.5  # the recorded pace is kept: not instant, not twice as slow
    assert data["meta"]["seconds"]["replay"] < 60


def test_doctor_reports_every_check_and_hides_keys(monkeypatch, capsys):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-secret-value")
    keys = doctor.check_keys({"OPENAI_API_KEY": "sk-test-secret-value"})
    assert [k.ok for k in keys] == [True, False, False]
    assert all(k.warning for k in keys if not k.ok)
    status = doctor.main()
    out = capsys.readouterr().out
    assert "sk-test-secret-value" not in out
    for name in ("python", "packages", "embedding model", "jupyterlab widgets", "openai key", "replay server"):
        assert f" {name}: " in out
    assert "replay server: started on http://127.0.0.1:" in out
    assert status == (0 if "All good" in out else 1)


def test_doctor_flags_wrong_and_missing_pins():
    check = doctor.check_packages({"requests": "0.0.1", "no-such-package-xyz": "1.0"})
    assert not check.ok and "requests" in check.detail and "no-such-package-xyz" in check.detail
    assert "pip install" in check.fix
    assert doctor.check_packages({"requests": __import__("requests").__version__}).ok



def test_run_parts_runs_only_the_named_parts_of_a_suite(monkeypatch):
    pytest.importorskip("llmkit.memory")
    from llmkit.bench import _memory

    ran: list[str] = []
    monkeypatch.setattr(_memory, "ingestion", lambda ctx, tmp: ran.append("ingestion"))
    monkeypatch.setattr(_memory, "retrieval", lambda ctx, tmp: ran.append("retrieval"))
    bench.run(["memory"], quick=True, parts={"retrieval"})
    assert ran == ["retrieval"]
    ran.clear()
    bench.run(["memory"], quick=True)  # no parts named: the whole suite
    assert ran == ["ingestion", "retrieval"]
