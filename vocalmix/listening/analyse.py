"""``vocalmix listening-test analyse``: statistics of the stored ratings.

Per method and category: mean, SD, count and the 95 % confidence interval of the mean
(Student's t). Per category: the Friedman test across methods with listener x song as blocks
(only blocks that rated every method), pairwise Wilcoxon signed-rank tests on the same blocks
with Holm's correction, and the papers' one-way ANOVA with Tukey-Kramer pairs.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from itertools import combinations
from pathlib import Path

import numpy as np

from ..errors import InputError

SUMMARY_COLUMNS = ["category", "method", "n", "mean", "sd", "ci95_low", "ci95_high"]
TEST_COLUMNS = ["category", "test", "group_a", "group_b", "n", "statistic", "p_value", "p_holm", "note"]


def load_ratings(test_dir: Path) -> tuple[list[dict], list[str], int]:
    """Long-format ratings (listener, song, method, category, rating), the categories, and the submission count."""
    test_dir = Path(test_dir)
    key_path, test_path = test_dir / "private" / "key.json", test_dir / "test.json"
    for path in (key_path, test_path):
        if not path.is_file():
            raise InputError(f"{test_dir}: no {path.relative_to(test_dir)} (is this a listening-test folder?)")
    key = json.loads(key_path.read_text())
    test = json.loads(test_path.read_text())
    categories = [c["id"] for c in test["categories"]]
    rows, count = [], 0
    for path in sorted((test_dir / "responses").glob("*.json")):
        try:
            document = json.loads(path.read_text())
        except ValueError:
            raise InputError(f"{path}: not valid JSON") from None
        if document.get("test_id") != key["test_id"]:
            continue
        count += 1
        for item in document["ratings"]:
            info = key["stimuli"][item["stimulus"]]
            rows.append(
                {
                    "listener": document["listener_id"],
                    "submission": path.name,
                    "song": info["song"],
                    "method": info["method"],
                    "category": item["category"],
                    "rating": int(item["rating"]),
                }
            )
    return rows, categories, count


def holm(p_values: list[float]) -> list[float]:
    """Holm's step-down adjusted p-values, in the input order."""
    order = sorted(range(len(p_values)), key=lambda i: p_values[i])
    adjusted = [0.0] * len(p_values)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(p_values) - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted


def summarise(rows: list[dict], categories: list[str]) -> list[dict]:
    from scipy import stats

    out = []
    methods = sorted({r["method"] for r in rows})
    for category in categories:
        for method in methods:
            values = np.array([r["rating"] for r in rows if r["category"] == category and r["method"] == method], float)
            if values.size == 0:
                continue
            mean = float(values.mean())
            sd = float(values.std(ddof=1)) if values.size > 1 else float("nan")
            half = (
                float(stats.t.ppf(0.975, values.size - 1) * sd / math.sqrt(values.size))
                if values.size > 1
                else float("nan")
            )
            out.append(
                {
                    "category": category,
                    "method": method,
                    "n": int(values.size),
                    "mean": mean,
                    "sd": sd,
                    "ci95_low": mean - half,
                    "ci95_high": mean + half,
                }
            )
    return out


def _blocks(rows: list[dict], category: str, methods: list[str]) -> np.ndarray:
    """Ratings ``(blocks, methods)`` for the listener x song blocks that rated every method."""
    table: dict = {}
    for r in rows:
        if r["category"] == category:
            table.setdefault((r["submission"], r["song"]), {})[r["method"]] = r["rating"]
    complete = [[block[m] for m in methods] for block in table.values() if all(m in block for m in methods)]
    return np.array(complete, dtype=float).reshape(-1, len(methods))


def hypothesis_tests(rows: list[dict], categories: list[str]) -> list[dict]:
    from scipy import stats

    out = []
    methods = sorted({r["method"] for r in rows})
    blank = {"group_a": "", "group_b": "", "n": "", "statistic": "", "p_value": "", "p_holm": "", "note": ""}
    for category in categories:
        blocks = _blocks(rows, category, methods)
        if len(methods) >= 3 and blocks.shape[0] >= 2 and np.ptp(blocks) > 0:
            friedman = stats.friedmanchisquare(*blocks.T)
            out.append(
                {
                    **blank,
                    "category": category,
                    "test": "friedman",
                    "n": blocks.shape[0],
                    "statistic": float(friedman.statistic),
                    "p_value": float(friedman.pvalue),
                }
            )
        else:
            out.append(
                {
                    **blank,
                    "category": category,
                    "test": "friedman",
                    "note": "needs three or more methods, two or more complete blocks and some variation",
                }
            )
        pairs = []
        for (i, a), (j, b) in combinations(enumerate(methods), 2):
            diff = blocks[:, i] - blocks[:, j] if blocks.size else np.array([])
            if diff.size and np.any(diff != 0):
                result = stats.wilcoxon(blocks[:, i], blocks[:, j])
                pairs.append(
                    {
                        **blank,
                        "category": category,
                        "test": "wilcoxon",
                        "group_a": a,
                        "group_b": b,
                        "n": int(diff.size),
                        "statistic": float(result.statistic),
                        "p_value": float(result.pvalue),
                    }
                )
            else:
                pairs.append(
                    {
                        **blank,
                        "category": category,
                        "test": "wilcoxon",
                        "group_a": a,
                        "group_b": b,
                        "n": int(diff.size),
                        "p_value": 1.0,
                        "note": "no differences",
                    }
                )
        for pair, adjusted in zip(pairs, holm([p["p_value"] for p in pairs])):
            pair["p_holm"] = adjusted
        out.extend(pairs)
        groups = [
            np.array([r["rating"] for r in rows if r["category"] == category and r["method"] == m], float)
            for m in methods
        ]
        if len(groups) >= 2 and all(g.size >= 2 for g in groups) and any(np.ptp(g) > 0 for g in groups):
            anova = stats.f_oneway(*groups)
            out.append(
                {
                    **blank,
                    "category": category,
                    "test": "anova",
                    "n": int(sum(g.size for g in groups)),
                    "statistic": float(anova.statistic),
                    "p_value": float(anova.pvalue),
                }
            )
            tukey = stats.tukey_hsd(*groups)
            for i, j in combinations(range(len(methods)), 2):
                out.append(
                    {
                        **blank,
                        "category": category,
                        "test": "tukey",
                        "group_a": methods[i],
                        "group_b": methods[j],
                        "n": int(groups[i].size + groups[j].size),
                        "statistic": float(tukey.statistic[i, j]),
                        "p_value": float(tukey.pvalue[i, j]),
                    }
                )
        else:
            out.append(
                {
                    **blank,
                    "category": category,
                    "test": "anova",
                    "note": "needs two or more ratings per method and some variation",
                }
            )
    return out


def plot_means(summary: list[dict], categories: list[str], path: Path) -> Path:
    from ..compare import _save_figure, pyplot

    plt = pyplot()
    methods = sorted({s["method"] for s in summary})
    fig, axes = plt.subplots(1, len(categories), figsize=(2.6 * len(categories), 3.4), sharey=True, squeeze=False)
    for ax, category in zip(axes[0], categories):
        for x, method in enumerate(methods):
            item = next((s for s in summary if s["category"] == category and s["method"] == method), None)
            if item is None:
                continue
            half = item["ci95_high"] - item["mean"] if math.isfinite(item["ci95_high"]) else 0.0
            ax.errorbar(x, item["mean"], yerr=half, fmt="o", color="#1f4e89", capsize=4)
        ax.set_title(category, fontsize=10)
        ax.set_xticks(range(len(methods)))
        ax.set_xticklabels(methods, rotation=30, fontsize=8)
        ax.set_ylim(0.8, 5.2)
        ax.grid(axis="y", linewidth=0.3)
    axes[0][0].set_ylabel("rating (mean, 95 % CI)")
    fig.tight_layout()
    try:
        return _save_figure(fig, path)
    finally:
        plt.close(fig)


def format_summary(summary: list[dict]) -> str:
    lines = [f"{'category':<10} {'method':<12} {'n':>4} {'mean':>6} {'95% CI':>13}", "-" * 49]
    for s in summary:
        ci = f"{s['ci95_low']:.2f}-{s['ci95_high']:.2f}" if math.isfinite(s["ci95_low"]) else "-"
        lines.append(f"{s['category']:<10} {s['method']:<12} {s['n']:>4} {s['mean']:>6.2f} {ci:>13}")
    return "\n".join(lines)


def analyse(test_dir: Path, progress: Callable[[str], None] = lambda m: None) -> dict:
    from ..compare import _write_csv_atomic, _write_text_atomic

    rows, categories, count = load_ratings(test_dir)
    if not rows:
        raise InputError(f"{test_dir}: no submissions in responses/ yet")
    progress(f"{count} submissions, {len(rows)} ratings")
    summary = summarise(rows, categories)
    tests = hypothesis_tests(rows, categories)
    out = Path(test_dir) / "results"
    out.mkdir(exist_ok=True)
    written = [
        _write_csv_atomic(
            out / "ratings.csv", rows, ["listener", "submission", "song", "method", "category", "rating"]
        ),
        _write_csv_atomic(out / "summary.csv", summary, SUMMARY_COLUMNS),
        _write_csv_atomic(out / "tests.csv", tests, TEST_COLUMNS),
        plot_means(summary, categories, out / "means.png"),
    ]
    significant = [
        t
        for t in tests
        if t["test"] in ("wilcoxon", "tukey")
        and isinstance(t["p_value"], float)
        and (t["p_holm"] if t["test"] == "wilcoxon" else t["p_value"]) < 0.05
    ]
    report = [
        "# Listening test results",
        "",
        f"{count} submissions.",
        "",
        "```",
        format_summary(summary),
        "```",
        "",
        "Tests per category: [tests.csv](tests.csv) (Friedman, Wilcoxon signed-rank with Holm's correction, "
        "one-way ANOVA, Tukey-Kramer). Significant pairs (p < 0.05; Holm-corrected for Wilcoxon):",
        "",
    ]
    report += [f"- {t['category']}, {t['test']}: {t['group_a']} vs {t['group_b']}" for t in significant] or ["- none"]
    report += ["", "![means with 95 % confidence intervals](means.png)", ""]
    written.append(_write_text_atomic(out / "report.md", "\n".join(report)))
    return {"summary": summary, "tests": tests, "written": written, "submissions": count}
