"""The theft audit: extraction attacks against the watched, watermarked API; monitor false alarms; watermark FPR.

Steps (all on the released model's scorer):

1. calibrate the monitor on legitimate reference data and the model's held-out decline rate at the real fraud rate;
2. legitimate keys (``benign_keys`` streams of ``queries`` real transactions at the real fraud rate) measure the
   monitor's false-alarm rate;
3. one attacker key per (stream, API mode): the stream is answered in batches of ``batch``; the copy is trained on
   the first ``b`` answers for each budget ``b`` and at the query where the monitor flagged the key (the answers
   a blocking API would have given); the 1,000-query copy is kept for the watermark;
4. the watermark test of every copy against its key's trigger set (true positives), and of every independently
   trained model against every key's trigger set (false positives).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from qsafe.fraud.extraction import STREAMS, f1, fit_surrogate, query_stream
from qsafe.fraud.theft import MODES, QueryMonitor, ResponseWatermark, ScoringAPI, check_watermark, expected_decline_rate

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

__all__ = ["theft_audit"]

Progress = Callable[[str], None]
Scorer = Callable[["npt.NDArray[np.float32]"], "npt.NDArray[np.float64]"]
FraudScore = Callable[["npt.NDArray[np.float32]"], "npt.NDArray[np.float64]"]


def _benign_false_alarms(scorer: Scorer, monitor_args: dict[str, Any], pool_x: Any, pool_y: Any, keys: int,
                         queries: int, seed: int) -> dict[str, Any]:
    monitor = QueryMonitor(**monitor_args)
    for k in range(keys):
        q = query_stream("real-natural", pool_x, pool_y, queries, seed=10_000 + seed * 1000 + k)
        monitor.observe(f"merchant-{k}", q, scorer(q))
    flagged = len(monitor.flagged)
    return {"keys": keys, "queries_per_key": queries, "flagged": flagged, "false_alarm_rate": flagged / keys,
            "first": sorted(monitor.flagged.values(), key=lambda f: f["query"])[:3]}


def _attack(task: tuple[Any, ...]) -> dict[str, Any]:
    """Worker: one attacker key (stream x API mode) against a fresh, identically calibrated monitor."""
    import numpy as np

    (scorer, monitor_args, secret, wm_rate, wm_alpha, stream, mode, pool_x, pool_y, test_x, test_y, queries,
     budgets, batch, decimals, goal_f1, seed) = task
    monitor = QueryMonitor(**monitor_args)
    watermark = ResponseWatermark(secret, rate=wm_rate)
    key = f"attacker-{stream}-{mode}"
    q = query_stream(stream, pool_x, pool_y, queries, seed=seed * 100 + STREAMS.index(stream))
    api = ScoringAPI(scorer, mode=mode, score_decimals=decimals, monitor=monitor, watermark=watermark)
    answers = np.concatenate([api.query(key, q[i:i + batch]) for i in range(0, queries, batch)])
    flag = monitor.flagged.get(key)
    victim_test = scorer(test_x) >= 0.5
    points = sorted({*(b for b in budgets if b <= queries), *([flag["query"]] if flag else [])})
    curve = []
    final = None
    for b in points:
        copy = fit_surrogate(q[:b], answers[:b], mode, seed=seed)
        pred = copy(test_x)
        curve.append({"queries": b, "f1": f1(pred, test_y), "fidelity_f1": f1(pred, victim_test)})
        if b == queries:
            final = copy
    at_flag = next((c for c in curve if flag and c["queries"] == flag["query"]), None)
    reached = next((c["queries"] for c in curve if c["f1"] >= goal_f1), None)
    victim_fraud = scorer(q) >= 0.5
    wm = None
    if final is not None:
        wm = check_watermark(final.score(q), watermark.selected(key, q), victim_fraud, alpha=wm_alpha,
                             cut=final.cut, queries=q).as_dict()
    return {"stream": stream, "mode": mode, "key": key, "flag": flag, "curve": curve,
            "f1_at_flag": at_flag["f1"] if at_flag else None,
            "fidelity_f1_at_flag": at_flag["fidelity_f1"] if at_flag else None,
            "first_budget_reaching_goal": reached,
            "final_f1": curve[-1]["f1"], "final_fidelity_f1": curve[-1]["fidelity_f1"],
            "flagged_before_goal": bool(flag and at_flag and at_flag["f1"] < goal_f1
                                        and (reached is None or flag["query"] < reached)),
            "never_reaches_goal": reached is None, "watermark": wm,
            "_log": (q, victim_fraud, watermark.selected(key, q))}


def theft_audit(scorer: Scorer, *, reference: npt.NDArray[np.float32], pool_x: npt.NDArray[np.float32],
                pool_y: npt.NDArray[np.int64], test_x: npt.NDArray[np.float32], test_y: npt.NDArray[np.int64],
                independent: Mapping[str, FraudScore], real_fraud_rate: float, secret: bytes,
                queries: int = 1000, budgets: Sequence[int] = (25, 50, 100, 200, 400, 700, 1000), batch: int = 10,
                benign_keys: int = 200, watermark_rate: float = 0.02, alpha: float = 1e-5, score_decimals: int = 3,
                streams: Sequence[str] = STREAMS, modes: Sequence[str] = MODES,
                watermark_alpha: float = 1e-3, goal_f1: float = 0.85, seed: int = 0, workers: int = 1,
                progress: Progress | None = None) -> dict[str, Any]:
    """Run the theft audit (see the module doc). ``scorer`` must be picklable when ``workers > 1``.

    Returns:
        A JSON-ready result (curves included for plots).
    """
    from qsafe.fraud._parallel import pmap

    pool_scores = scorer(pool_x)
    rate = expected_decline_rate(pool_scores[pool_y == 0], pool_scores[pool_y == 1], real_fraud_rate)
    monitor_args = {"reference": reference, "fraud_rate": max(rate, 1e-4), "alpha": alpha}
    benign = _benign_false_alarms(scorer, monitor_args, pool_x, pool_y, benign_keys, queries, seed)
    if progress:
        progress(f"monitor: {benign['flagged']}/{benign_keys} legitimate keys flagged")
    victim_f1 = f1(scorer(test_x) >= 0.5, test_y)
    tasks = [(scorer, monitor_args, secret, watermark_rate, watermark_alpha, stream, mode, pool_x, pool_y, test_x,
              test_y, queries, tuple(budgets), batch, score_decimals, goal_f1, seed)
             for stream in streams for mode in modes]

    def tick(_: int, a: dict[str, Any]) -> None:
        if progress:
            progress(f"extraction {a['stream']}/{a['mode']}: flagged at "
                     f"{a['flag']['query'] if a['flag'] else 'never'}, F1 {a['final_f1']:.3f} after {queries}")

    attacks = pmap(_attack, tasks, workers, tick)
    logs = {a["key"]: a.pop("_log") for a in attacks}
    wm_tp = [{"copy": a["key"], **a["watermark"]} for a in attacks if a["watermark"] is not None]
    wm_fp = []
    for name, model in independent.items():
        for key, (q, victim_fraud, selected) in logs.items():
            test = check_watermark(model(q), selected, victim_fraud, alpha=watermark_alpha, queries=q)
            wm_fp.append({"model": name, "key": key, **test.as_dict()})
    if progress:
        progress(f"watermark: {sum(t['identified'] for t in wm_tp)}/{len(wm_tp)} copies identified, "
                 f"{sum(t['identified'] for t in wm_fp)}/{len(wm_fp)} independent tests positive")
    return {
        "victim_f1": victim_f1, "goal_f1": goal_f1, "queries": queries, "batch": batch,
        "score_decimals": score_decimals,
        "monitor": {"alpha": alpha, "window": 100, "expected_decline_rate": rate, "benign": benign},
        "attacks": attacks,
        "watermark": {"rate": watermark_rate, "alpha": watermark_alpha,
                      "copies": wm_tp, "identified": sum(t["identified"] for t in wm_tp), "copies_tested": len(wm_tp),
                      "independent": wm_fp, "false_positives": sum(t["identified"] for t in wm_fp),
                      "independent_tests": len(wm_fp), "independent_models": sorted(independent)},
    }
