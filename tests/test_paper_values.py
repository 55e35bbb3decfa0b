"""The paper's numbers as data: a few transcribed values, completeness, consistency between tables."""

from __future__ import annotations

import math

import pytest

from reproduce import values as PV

SHAPES = {  # table -> (rows, columns, metrics); Tables 2, 4, 5 with our sampling-error columns
    1: (9, 7, 1),
    2: (10, 6, 1),
    3: (9, 7, 1),
    4: (7, 7, 1),
    5: (1, 10, 1),
    7: (6, 3, 3),
}


@pytest.mark.parametrize(
    "number, target, method, metric, mean, std",
    [
        (1, "8peaky", "jkoic", None, 3.4e-5, 8.2e-6),
        (1, "mustache", "hmc", None, 1.7e-3, 4.3e-4),
        (1, "gmm200", "sampling_error", None, 2.0e-4, None),
        (2, "lgcp", "jkoic", None, 508.2, 0.1),
        (2, "gmm20", "craft", None, -1.5, 0.17),
        (2, "8modes", "jkoic", None, 5.1e-6, 2.4e-3),
        (3, "funnel", "sampling_error", None, 1.0e3, None),
        (3, "gmm200", "dds", None, 24.0, 40.0),
        (4, "gmm100", "craft", None, 0.9, 4.8e-8),
        (5, "gmm40", "scld", None, 3787.73, 249.75),
        (5, "gmm40", "jkoic", None, 3025.61, 418.10),
        (5, "gmm40", "jkoic_geomloss", None, 3025.61, 418.10),
        (7, "funnel", "coupling_kl", "w2", 8.1e2, None),
        (7, "8peaky", "cnf_kl", "log_z", -2.1, None),
    ],
)
def test_transcribed_values(number, target, method, metric, mean, std):
    v = PV.value(number, target, method, metric)
    assert v.mean == pytest.approx(mean, rel=1e-12)
    if std is None:
        assert v.std is None
    else:
        assert v.std == pytest.approx(std, rel=1e-12)


@pytest.mark.parametrize("number", sorted(SHAPES))
def test_every_cell_present(number):
    t = PV.table(number)
    n_rows, n_cols, n_metrics = SHAPES[number]
    assert (len(t.rows), len(t.columns), len(t.metrics)) == (n_rows, n_cols, n_metrics)
    assert len(t.cells) == n_rows * n_cols * n_metrics
    for target in t.rows:
        assert target in PV.TARGETS
        for method in t.columns:
            assert method in PV.METHODS
            for metric in t.metrics:
                v = t.get(target, method, metric)
                assert v.quoted == (method in PV.QUOTED)
                if v.reported:
                    assert math.isfinite(v.mean)
                    assert v.std is None or v.std >= 0
                else:
                    assert v.note  # a missing number says why


def test_only_lgcp_ground_truth_and_our_sampling_errors_are_missing():
    missing = [(t.number, *k) for t in PV.TABLES.values() for k, v in t.cells.items() if not v.reported]
    assert [m for m in missing if not m[2].startswith("sampling_error")] == [(2, "lgcp", "ground_truth", "log_z")]
    # the sampling-error columns the paper has no number for: every row of Tables 2 and 4, both of Table 5's
    ours_only = {m for m in missing if m[2].startswith("sampling_error")}
    assert ours_only == (
        {(2, r, "sampling_error", "log_z") for r in PV.table(2).rows}
        | {(4, r, "sampling_error", "mode_mse") for r in PV.table(4).rows}
        | {(5, "gmm40", m, "sinkhorn") for m in ("sampling_error", "sampling_error_geomloss")}
    )


def test_quoted_methods():
    assert PV.QUOTED == {"dds", "craft", "smc", "pis", "cmcd_lv", "scld"}
    assert PV.value(1, "funnel", "dds").quoted and PV.value(5, "gmm40", "pis").quoted
    assert not PV.value(1, "funnel", "mala").quoted and not PV.value(5, "gmm40", "jkoic").quoted


def test_table7_agrees_with_tables_2_and_3():
    """Table 7 repeats neural JKO IC's log Z and W2 (this also checks the corrected cells)."""
    for target in PV.table(7).rows:
        assert PV.value(7, target, "jkoic", "log_z").mean == PV.value(2, target, "jkoic").mean
        assert PV.value(7, target, "jkoic", "w2").mean == PV.value(3, target, "jkoic").mean
        e7, e1 = PV.value(7, target, "jkoic", "energy").mean, PV.value(1, target, "jkoic").mean
        assert e7 == pytest.approx(e1, rel=0.05)  # GMM-10: 5.2e-5 in Table 7, 5.3e-5 in Table 1


def test_corrections_are_documented():
    assert PV.value(3, "mustache", "jkoic").mean == 17.0 and PV.value(3, "mustache", "jkoic").note
    assert PV.value(2, "mustache", "jkoic").mean == -7.3e-3 and PV.value(2, "mustache", "jkoic").note


def test_table6_complete():
    assert list(PV.TABLE6) == [
        "mustache",
        "8modes",
        "8peaky",
        "funnel",
        "gmm10",
        "gmm20",
        "gmm50",
        "gmm100",
        "gmm200",
        "gmm40",
        "lgcp",
    ]
    for target, col in PV.TABLE6.items():
        assert set(col) == set(PV.TABLE6_ROWS), target
    assert PV.table6("gmm200")["hidden"] == 512 and PV.table6("gmm200")["train_minutes"] == 80
    assert PV.table6("lgcp")["sample_seconds"] == 535 and PV.table6("lgcp")["batch_size"] == 500
    assert PV.table6("gmm40")["gradient_flow_time"] == 3.0
    assert PV.table6()["8peaky"]["n1"] == 2


def test_errors():
    with pytest.raises(ValueError, match="no results table"):
        PV.table(6)
    with pytest.raises(KeyError):
        PV.value(1, "lgcp", "jkoic")
    with pytest.raises(ValueError, match="Table 6 has no column"):
        PV.table6("nope")
