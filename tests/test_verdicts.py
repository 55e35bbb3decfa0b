"""The verdicts under README.md's headline: at the paper, and within the reproduction's tolerance."""

from __future__ import annotations

import csv
from pathlib import Path

from reproduce import verdicts

FIELDS = ["table", "target", "method", "metric", "ours_mean", "ours_std", "ours_runs"]
FIELDS += ["paper_mean", "paper_std", "quoted", "note"]
METRICS = {1: "energy", 2: "log_z", 3: "w2", 4: "mode_mse"}


def _write(folder: Path, cells: dict[int, list[dict[str, object]]]) -> Path:
    """Tables 1-4 in ``folder``: per table, rows given as dicts (target, method, ours_mean, paper_*)."""
    folder.mkdir(parents=True, exist_ok=True)
    for number in METRICS:
        with open(folder / f"table{number}.csv", "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=FIELDS)
            w.writeheader()
            for r in cells.get(number, []):
                row = {"table": number, "metric": METRICS[number], "ours_runs": 1, **r}
                w.writerow({k: row.get(k, "") for k in FIELDS})
    return folder


def _jko(target: str, ours: float, mean: float, std: float) -> dict[str, object]:
    return dict(target=target, method="jkoic", ours_mean=ours, paper_mean=mean, paper_std=std)


def _ref(target: str, method: str, ours: float) -> dict[str, object]:
    return dict(target=target, method=method, ours_mean=ours)


def test_a_distance_counts_within_two_paper_stds_or_twice_our_sampling_error(tmp_path):
    tables = _write(
        tmp_path,
        {
            1: [
                _jko("gmm10", 1.3e-4, 1.0e-4, 2.0e-5),  # within 2 std (not 1): reproduced, not at the paper
                _jko("gmm20", 5.0e-4, 1.0e-4, 1.0e-5),  # beyond 2 std, but 2x the sampling error 3e-4
                _ref("gmm20", "sampling_error", 3.0e-4),
                _jko("gmm50", 1.6e-3, 1.0e-4, 4.6e-5),  # beyond both
                _ref("gmm50", "sampling_error", 5.5e-4),
            ]
        },
    )
    assert verdicts.at_paper(tables) == "At or better than the paper's mean ± std in 0 of 3 cells."
    text = verdicts.reproduced(tables)
    assert "in 2 of 3 cells; not reproduced: GMM-50 (energy)." in text


def test_log_z_counts_by_its_distance_to_the_truth_or_one_nat_below_the_paper_without_one(tmp_path):
    tables = _write(
        tmp_path,
        {
            2: [
                _jko("gmm20", -7.9e-3, 6.4e-3, 3.8e-3),  # |-7.9e-3| <= 6.4e-3 + 7.6e-3
                _ref("gmm20", "ground_truth", 0.0),
                _jko("gmm50", -0.54, 1.1e-2, 3.9e-3),
                _ref("gmm50", "ground_truth", 0.0),
                _jko("8peaky", 0.05, 1.0e-3, 1.0e-3),  # above the truth by more than the paper's error
                _ref("8peaky", "ground_truth", 0.0),
                _jko("lgcp", 509.5, 508.2, 0.1),  # no truth: higher than the paper's ELBO
                _jko("mustache", 507.1, 508.2, 0.1),  # no truth, 1.1 nats below the paper's
            ]
        },
    )
    text = verdicts.reproduced(tables)
    assert text.endswith("in 2 of 5 cells; not reproduced: GMM-50 (log Z); shifted 8 Peaky (log Z); Mustache (log Z).")
    assert verdicts.is_reproduced(2, 508.2 - verdicts.LOG_Z_SLACK, 508.2, 0.1, {})
    assert not verdicts.is_reproduced(2, 508.2 - verdicts.LOG_Z_SLACK - 1e-6, 508.2, 0.1, {})


def test_cells_without_our_value_or_the_papers_are_not_counted(tmp_path):
    tables = _write(
        tmp_path,
        {3: [_jko("gmm10", 0.19, 0.14, 0.023), dict(target="lgcp", method="jkoic", paper_mean=1.0)]},
    )
    assert verdicts.reproduced(tables).endswith("in 0 of 1 cells; not reproduced: GMM-10 (W2²).")
    assert verdicts.reproduced(_write(tmp_path / "none", {})).endswith("in 0 of 0 cells.")
