"""The sampling-error references over many draws (reproduce/references.py): seeds, statistics,
the file, the tables' use of it and the profiles' agreement with their targets."""

from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pytest

from reproduce import combine, tables
from reproduce import references as R
from reproduce.evaluation import reference_errors
from reproduce.grid import Grid, Job, notebook_defaults, plan_grid
from reproduce.methods import make_target

#: the notebooks whose targets carry sampling-error references (Tables 1, 3, 4)
REFERENCED = {"mustache", "eight_modes", "funnel", "gmm"}
PROFILES = ("smoke", "cpu", "full", "paper")


def test_draw_seeds_extend_the_runs_own_seeds():
    seeds = R.draw_seeds(3, 4)
    assert seeds[:3] == [0, 1, 2] and len(set(seeds)) == 12
    assert all(s % 3 == r for r, s in zip([0, 1, 2] * 4, seeds, strict=True))  # draw k of run r: run r's target
    for bad in ((0, 2), (2, 0)):
        with pytest.raises(ValueError, match="at least 1"):
            R.draw_seeds(*bad)


def test_target_keys():
    assert R.target_of("gmm20") == ("gmm", 20)
    assert R.target_of("gmm40") == ("gmm40", None)  # GMM40-50D, a target of its own
    assert R.target_of("8peaky") == ("8peaky", None)
    with pytest.raises(ValueError, match="unknown target key 'banana9'"):
        R.target_of("banana9")


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"targets": []}, "non-empty list"),
        ({"targets": ["8modes", "8modes"]}, "listed twice"),
        ({"targets": ["nope"]}, "unknown target key"),
        ({"targets": ["8modes"], "per_target": {"gmm10": {}}}, "not listed"),
        ({"targets": ["8modes"], "per_target": {"8modes": {"n_samples": 3}}}, "unknown keys"),
        ({"targets": ["8modes"], "n_eval": 1}, "n_eval must be an integer >= 2"),
        ({"targets": ["8modes"], "per_target": {"8modes": {"runs": 1.5}}}, "runs must be an integer"),
        ({"targets": ["8modes"], "draws": 0}, "at least 1"),
    ],
)
def test_bad_settings_fail_before_any_draw(kwargs, match, monkeypatch):
    import reproduce.evaluation as E

    monkeypatch.setattr(E, "reference_errors", lambda *a, **k: pytest.fail("computed before checking"))
    with pytest.raises(ValueError, match=match):
        R.compute(**{"draws": 2, **kwargs})


def test_draw_zero_is_the_target_notebooks_own_reference():
    e = R.compute(["gmm10"], draws=2, runs=2, n_eval=500, n_w2=50, n_projections=20)["gmm10"]
    assert e["seeds"] == [0, 1, 2, 3]
    for i, seed in enumerate(e["seeds"]):
        own = reference_errors(
            make_target("gmm", dim=10, run=seed % 2), n_eval=500, n_w2=50, n_projections=20, seed=seed
        )
        assert {m: v[i] for m, v in e["values"].items()} == pytest.approx(own, rel=0, abs=0)


def test_mode_mse_draws_average_to_the_multinomial_expectation():
    """An exact sampler's mode MSE (sum over modes) has expectation sum_k w_k (1 - w_k) / N."""
    n, draws = 2000, 150
    e = R.compute(["8modes"], draws=draws, n_eval=n, n_w2=0, n_projections=1)["8modes"]
    v = np.array(e["values"]["mode_mse"])
    w = np.full(8, 1 / 8)
    expected = float((w * (1 - w)).sum() / n)
    assert abs(v.mean() - expected) < 4 * v.std(ddof=1) / math.sqrt(draws), (v.mean(), expected)
    assert v.std() > 0.2 * expected  # the spread one draw has: a single reference is noisy


def _entry(**sizes):
    base = {"n_eval": 100, "n_w2": 10, "n_projections": 5, "runs": 1, "draws": 3, "seeds": [0, 1, 2]}
    return {**base, **sizes, "values": {"energy": [1.0, 2.0, 3.0]}}


def test_the_file_round_trips_and_base_fills_in(tmp_path):
    R.save_references(tmp_path / "a", {"8modes": _entry()}, profile="x")
    R.save_references(tmp_path / "b", {"8modes": _entry(n_eval=7), "gmm10": _entry()}, profile="y")
    refs = R.load_references(tmp_path / "a", base=tmp_path / "b")
    assert refs["8modes"]["n_eval"] == 100 and refs["gmm10"]["n_eval"] == 100
    assert R.load_references(tmp_path / "none") == {}


@pytest.mark.parametrize(
    "content, match",
    [
        ("{not json", "not valid JSON"),
        (json.dumps({"format": "jkoic-paper-results"}), "not a references file"),
        (json.dumps({"format": R.REFERENCES_FORMAT, "targets": []}), "'targets' must map"),
        (
            json.dumps({"format": R.REFERENCES_FORMAT, "targets": {"x": {**_entry(), "seeds": [0]}}}),
            "one value per seed",
        ),
        (json.dumps({"format": R.REFERENCES_FORMAT, "targets": {"x": {"seeds": [], "values": {}}}}), "lacks n_eval"),
    ],
)
def test_a_corrupt_or_foreign_file_is_named(tmp_path, content, match):
    (tmp_path / R.REFERENCES_FILE).write_text(content)
    with pytest.raises(ValueError, match=match):
        R.load_references(tmp_path)


def _result(**settings):
    base = {"n_eval": 100, "n_w2": 10, "n_projections": 5, "runs": 1}
    return {
        "target": "8modes",
        "settings": {**base, **settings},
        "reference": {"energy": [9.0], "w2": [4.0]},
        "runs": {},
    }


def test_the_tables_take_the_draws_where_the_sizes_agree():
    results = {"8modes": _result()}
    out = R.with_references(results, {"8modes": _entry()})
    assert out["8modes"]["reference"] == {"energy": [1.0, 2.0, 3.0]} and out["8modes"]["reference_draws"] == 3
    assert results["8modes"]["reference"]["energy"] == [9.0]  # the input is left as it was
    assert tables.collect(out)[("8modes", "sampling_error", "energy")] == [1.0, 2.0, 3.0]
    t = tables.build_table(1, out)
    assert "mean ± std over 3 draws of an exact sampler" in t.caption


def test_draws_at_other_sizes_are_not_used():
    results = {"8modes": _result(n_eval=200)}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = R.with_references(results, {"8modes": _entry()})
    assert out["8modes"]["reference"]["energy"] == [9.0] and "reference_draws" not in out["8modes"]
    assert any("n_eval 200 vs 100" in str(w.message) for w in caught)
    assert "draws of an exact sampler" not in tables.build_table(1, out).caption


def test_combine_copies_the_references_file(tmp_path):
    job = Job("references", "references", "references", "references", None, 1, {})
    (tmp_path / "runs" / "references").mkdir(parents=True)
    R.save_references(tmp_path / "runs" / "references", {"8modes": _entry()}, profile="x")
    g = Grid("x", tmp_path, [job], None, ["references"])
    status = combine.combine(g, {"references": {"host": "h", "code_version": "c"}}, set())
    assert status == {"references": "combined (references)"}
    assert R.load_references(tmp_path)["8modes"]["draws"] == 3
    combine.combine(g, {}, {"references"})  # a failed references job leaves no stale file
    assert not (tmp_path / R.REFERENCES_FILE).exists()


def _scored_sizes(job: Job) -> dict[str, int]:
    """The sizes a target job's notebook scores its methods at."""
    eff = {**notebook_defaults(job.notebook), **job.params}
    if job.notebook == "gmm":
        eff.update((eff.get("per_dim") or {}).get(str(eff["dims"][0]), {}))
    return {"n_eval": eff["n_eval"], "n_w2": eff["n_w2"], "n_projections": eff["n_projections"], "runs": job.runs}


@pytest.mark.parametrize("profile", PROFILES)
def test_each_profiles_references_are_drawn_at_its_targets_sizes(profile):
    g = plan_grid(profile)
    (ref,) = [j for j in g.jobs if j.notebook == "references"]
    p = {**notebook_defaults("references"), **ref.params}
    specs = R._specs(
        p["targets"],
        runs=p["runs"],
        n_eval=p["n_eval"],
        n_w2=p["n_w2"],
        n_projections=p["n_projections"],
        per_target=p["per_target"],
    )
    scored = {j.target: _scored_sizes(j) for j in g.jobs if j.notebook in REFERENCED}
    assert set(specs) == set(scored), f"{profile}: references for {sorted(specs)}, targets {sorted(scored)}"
    for key, sizes in scored.items():
        assert specs[key] == sizes, f"{profile}, {key}: references at {specs[key]}, scored at {sizes}"
