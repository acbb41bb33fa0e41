"""The report's second half: the loop run twice. Each arm's clicks per visit in both generations, the
off-policy estimates on generation 0's served log against the online truth, both models' offline
NDCG@10 on the same held-out shoppers, and what the served log costs on disk.

The ``static`` arm ranks by the model alone and never learns, so its change from generation 0 to 1
is the model's doing (plus the world's drift); the learning arms also carry their evidence over.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from serendip.generations import OPE_ESTIMATORS, Update
from serendip.report import mean_interval


def clicks_by_generation(visits: pd.DataFrame, arms: tuple[str, ...]) -> dict[int, dict[str, tuple]]:
    """generation -> arm -> (clicks per visit, 95% low, 95% high, visits)."""
    out: dict[int, dict[str, tuple]] = {}
    for g, v in visits.groupby("generation", sort=True):
        out[int(g)] = {arm: (*mean_interval(v.loc[v["arm"] == arm, "clicks"].to_numpy()), int((v["arm"] == arm).sum()))
                       for arm in arms if (v["arm"] == arm).any()}
    return out


def generation_table(by_gen: dict[int, dict[str, tuple]], policies: dict[str, str]) -> pd.DataFrame:
    """One row per arm: clicks per visit with its interval in each generation, and the change."""
    rows = []
    for arm in by_gen.get(0, {}):
        row = {"arm": arm, "policy": policies.get(arm, arm)}
        for g, arms in by_gen.items():
            mean, low, high, n = arms.get(arm, (float("nan"),) * 3 + (0,))
            row[f"gen {g} clicks/visit (95% CI)"] = f"{mean:.3f} [{low:.3f}, {high:.3f}] ({n} visits)"
        if 1 in by_gen and arm in by_gen[1]:
            row["change"] = f"{by_gen[1][arm][0] - by_gen[0][arm][0]:+.3f}"
        rows.append(row)
    return pd.DataFrame(rows)


def ope_table(ope: pd.DataFrame, k: int) -> pd.DataFrame:
    """Each off-policy estimate as clicks per visit (value per shown item x k), beside the online truth."""
    rows = []
    for r in ope.itertuples():
        rows.append({"policy": r.policy, "estimator": r.estimator, "estimate/visit": r.value * k,
                     "95% CI": f"[{r.ci_low * k:.3f}, {r.ci_high * k:.3f}]", "ESS": r.ess,
                     "online/visit": r.online * k if np.isfinite(r.online) else "",
                     "rel. error": f"{r.rel_error:.1%}" if np.isfinite(r.rel_error) else "",
                     "covers": "" if r.covers is None else ("yes" if r.covers else "no")})
    return pd.DataFrame(rows)


def ndcg_table(ndcg: dict) -> pd.DataFrame:
    """NDCG@10 and Recall@10 of model 0, model 1 and popularity on the shared held-out positives."""
    names = {"model0": "model 0 (generation 0)", "model1": "model 1 (retrained, generation 1)",
             "popularity": "popularity (reference)"}
    return pd.DataFrame([{"model": label, "NDCG@10": ndcg[key]["ndcg10"], "Recall@10": ndcg[key]["recall10"]}
                         for key, label in names.items()])


def summary_keys(update: Update, by_gen: dict[int, dict[str, tuple]], candidates_per_slate: int) -> dict:
    """summary.json's keys of the loop run twice."""
    checks = update.ope[update.ope["policy"].str.startswith("arm:")]

    def per_arm(column: str, estimator: str) -> dict:
        rows = checks[checks["estimator"] == estimator]
        return {p.removeprefix("arm:"): (bool(v) if column == "covers" else float(v))
                for p, v in zip(rows["policy"], rows[column], strict=True)}

    return {
        "generations": len(by_gen),
        **{f"gen{g}_clicks_per_visit": {arm: v[0] for arm, v in arms.items()} for g, arms in by_gen.items()},
        **{f"gen{g}_clicks_per_visit_ci": {arm: [v[1], v[2]] for arm, v in arms.items()} for g, arms in by_gen.items()},
        "ope_rel_error": {e: per_arm("rel_error", e) for e in OPE_ESTIMATORS},
        "ope_covers": {e: per_arm("covers", e) for e in OPE_ESTIMATORS},
        "ope_online_per_item": per_arm("online", "dr"),
        "ope_candidates": {spec: float(v) for spec, v in update.ope.loc[
            (update.ope["estimator"] == "dr") & ~update.ope["policy"].str.startswith("arm:"), ["policy", "value"]
        ].itertuples(index=False)},
        "model0_ndcg10": update.ndcg["model0"]["ndcg10"], "model1_ndcg10": update.ndcg["model1"]["ndcg10"],
        "popularity_ndcg10": update.ndcg["popularity"]["ndcg10"], "ndcg_users": update.ndcg["users"],
        "ndcg_positives": update.ndcg["positives"],
        "model1_val_ndcg10": update.retrained.best.get("val_ndcg10"),
        "log_bytes_per_impression": update.log["bytes_per_slate"], "log_candidates_per_slate": candidates_per_slate,
        "log_slates": update.log["slates"], "log_impression_bytes": update.log["impression_bytes"],
        "log_decision_bytes": update.log["decision_bytes"],
        "redeploy": update.redeploy,
    }


def section(update: Update, by_gen: dict[int, dict[str, tuple]], policies: dict[str, str], k: int,
            candidates: int, table) -> list[str]:
    """The report's section on the loop run twice (``table`` renders a DataFrame as markdown)."""
    log, ndcg, redeploy = update.log, update.ndcg, update.redeploy
    return [
        "## 8. The loop, twice: off-policy check, retraining, live redeploy", "",
        "Generation 0's served log (impressions and each slate's decision context) was read back and every "
        "policy below replayed on it, learning as it went on serving's clock (a click at once, an unclicked slot "
        "when its reward window closed). `arm:NAME` rows are each served arm's self-check: replayed learning "
        "only from its own slates, its estimate should cover its own online value. Values are clicks per visit "
        f"(per shown item x {k}).", "",
        table(ope_table(update.ope, k)), "",
        f"The log took {log['bytes_per_slate']:.0f} bytes on disk per slate ({candidates} candidates each; "
        f"impressions {log['impression_bytes']:,} B, decisions {log['decision_bytes']:,} B, {log['slates']} slates).", "",
        f"Model 1 was retrained on the shop's history plus that log, warm-started from model 0 "
        f"(best val_ndcg10 on its own split {update.retrained.best.get('val_ndcg10', float('nan')):.4f}), and went "
        f"live with `serendip deploy`: model `{redeploy['model_version_before']}` -> "
        f"`{redeploy['model_version_after']}`, bandit restarted: {'yes' if redeploy['bandit_restarted'] else 'no'}.", "",
        f"Offline, on the same {ndcg['users']} held-out shoppers ({ndcg['positives']} positives held out of both "
        "runs' training; the same histories, full catalog, seen items masked):", "",
        table(ndcg_table(ndcg)), "",
        "Each arm in both generations (the same shoppers' world carries on; `static` isolates the model's change, "
        "the learning arms also keep their evidence):", "",
        table(generation_table(by_gen, policies)), "",
    ]
