"""Benchmark: calibration of `CompletionPredictor` 90% intervals against classic baselines.

Part 1 (targets T12): many random calibration/test splits on two synthetic truths for the ratio
actual/estimate; truth A ~ LogNormal(0.15, 0.5), truth B = 85% LN(0.1, 0.35) + 15% LN(1.0, 0.6).
Coverage and upper-tail miss are exact (from the true CDF) for each calibration set, then averaged.
Methods: split conformal (ours, ``aci_gamma=0``), ours as deployed (ACI gamma 0.01 running during
calibration), a normal interval on the ratio (mean +- 1.645 sd) and a log-normal t-interval.

Part 2 (target T14): an online stream where sigma jumps 0.35 -> 0.8 at t = 2000; ours (ACI) vs a
static sliding-window conformal (same window, no ACI), coverage right after the jump and long-run.

Part 3 (info): latency of `predict` and of `upper_factors` for 1,000 agents after one outcome.

Run: ``python tools/bench_prediction.py [--quick]``.
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
import time
from pathlib import Path

import numpy as np
from scipy import stats

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from stellar_graph.prediction import CompletionPredictor

Z90 = stats.norm.ppf(0.95)


# ----------------------------------------------------------------------------- truths


def sample_a(rng: np.random.Generator, n: int) -> np.ndarray:
    return np.exp(rng.normal(0.15, 0.5, n))


def cdf_a(x: float) -> float:
    return 0.0 if x <= 0 else float(stats.norm.cdf((math.log(x) - 0.15) / 0.5))


def sample_b(rng: np.random.Generator, n: int) -> np.ndarray:
    blow = rng.random(n) < 0.15
    return np.exp(np.where(blow, rng.normal(1.0, 0.6, n), rng.normal(0.1, 0.35, n)))


def cdf_b(x: float) -> float:
    if x <= 0:
        return 0.0
    lx = math.log(x)
    return float(0.85 * stats.norm.cdf((lx - 0.1) / 0.35) + 0.15 * stats.norm.cdf((lx - 1.0) / 0.6))


TRUTHS = {"A lognormal": (sample_a, cdf_a), "B blow-up mix": (sample_b, cdf_b)}


# ----------------------------------------------------------------------------- methods


def ours(gamma: float):
    def method(rng: np.random.Generator, ratios: np.ndarray) -> tuple[float, float]:
        p = CompletionPredictor(aci_gamma=gamma)
        estimates = rng.uniform(10.0, 240.0, len(ratios))
        for est, r in zip(estimates, ratios, strict=True):
            p.observe("agent", float(est), float(est * r))
        iv = p.predict("agent", 1.0)
        return iv.lower_minutes, iv.upper_minutes

    return method


def normal_on_ratio(rng: np.random.Generator, ratios: np.ndarray) -> tuple[float, float]:
    m, sd = ratios.mean(), ratios.std(ddof=1)
    return m - Z90 * sd, m + Z90 * sd


def lognormal_t(rng: np.random.Generator, ratios: np.ndarray) -> tuple[float, float]:
    logs = np.log(ratios)
    n = len(logs)
    half = stats.t.ppf(0.95, n - 1) * logs.std(ddof=1) * math.sqrt(1 + 1 / n)
    return math.exp(logs.mean() - half), math.exp(logs.mean() + half)


METHODS = {
    "split conformal (ours, γ=0)": ours(0.0),
    "ours as deployed (ACI γ=.01)": ours(0.01),
    "normal on ratio ±1.645sd": normal_on_ratio,
    "log-normal t-interval": lognormal_t,
}


def run_splits(reps: int, n_cals: list[int], seed: int) -> bool:
    print(f"\n## Part 1: {reps} random calibration sets per cell; exact coverage from the true CDF")
    print("Targets (T12): coverage in [89%, 93%] and upper-tail miss <= 5.5% on both truths.\n")
    head = f"{'truth':<14} {'n_cal':>5} {'method':<30} {'coverage':>8} {'[10-90%]':>14} "
    head += f"{'up miss':>7} {'lo miss':>7} {'x ours':>6} {'width':>6}  target"
    print(head)
    print("-" * len(head))
    all_ok = True
    for t_idx, (truth, (sample, cdf)) in enumerate(TRUTHS.items()):
        for n_cal in n_cals:
            ours_up = None
            for m_idx, (name, method) in enumerate(METHODS.items()):
                rng = np.random.default_rng([seed, t_idx, n_cal, m_idx])
                cov, up, lo, width = (np.empty(reps) for _ in range(4))
                for i in range(reps):
                    lower, upper = method(rng, sample(rng, n_cal))
                    f_lo, f_hi = cdf(lower), cdf(upper)
                    cov[i], up[i], lo[i], width[i] = f_hi - f_lo, 1 - f_hi, f_lo, upper - lower
                ok = 0.89 <= cov.mean() <= 0.93 and up.mean() <= 0.055
                ours_up = up.mean() if ours_up is None else ours_up
                if m_idx == 0:
                    all_ok &= ok
                band = f"[{np.quantile(cov, 0.1):.3f}, {np.quantile(cov, 0.9):.3f}]"
                verdict = (
                    ("PASS" if ok else "FAIL") if m_idx == 0 else ("(pass)" if ok else "(fail)")
                )
                print(
                    f"{truth:<14} {n_cal:>5} {name:<30} {cov.mean():>8.3f} {band:>14} "
                    f"{up.mean():>7.4f} {lo.mean():>7.4f} {up.mean() / ours_up:>5.2f}x "
                    f"{np.median(width):>6.2f}  {verdict}"
                )
    print(
        "x ours = upper-tail miss relative to split conformal (ours); width = median, x estimate."
    )
    return all_ok


# ----------------------------------------------------------------------------- drift


def drift_stream(seed: int, n_steps: int, jump: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    sigma = np.where(np.arange(n_steps) < jump, 0.35, 0.8)
    ratios = np.exp(rng.normal(0.15, sigma))
    estimates = rng.uniform(10.0, 240.0, n_steps)
    hits = {}
    for name, gamma in (("ours (ACI γ=0.01)", 0.01), ("static window, no ACI", 0.0)):
        p = CompletionPredictor(aci_gamma=gamma)
        hit = np.empty(n_steps, dtype=bool)
        for t in range(n_steps):
            est = float(estimates[t])
            act = est * float(ratios[t])
            iv = p.predict("agent", est)
            hit[t] = iv.lower_minutes <= act <= iv.upper_minutes
            p.observe("agent", est, act)
        hits[name] = hit
    return hits


def run_drift(seeds: int, n_steps: int, jump: int) -> bool:
    print(f"\n## Part 2: drift, sigma 0.35 -> 0.8 at t={jump}, window 200, {seeds} seeds")
    print("Targets (T14): coverage over the 200 tasks after the jump >= 85%; long-run 90 +- 1%.\n")
    runs = [drift_stream(s, n_steps, jump) for s in range(seeds)]
    head = f"{'method':<24} {'pre-jump':>8} {'200 after':>9} {'[min, max]':>14} "
    head += f"{'all after':>9} {'long-run':>8}  target"
    print(head)
    print("-" * len(head))
    ok_all = True
    for m_idx, name in enumerate(runs[0]):
        h = np.array([r[name] for r in runs])
        after200 = h[:, jump : jump + 200].mean(axis=1)
        pre, after, overall = h[:, :jump].mean(), h[:, jump:].mean(), h.mean()
        ok = after200.mean() >= 0.85 and abs(overall - 0.9) <= 0.01
        if m_idx == 0:
            ok_all &= ok
        verdict = ("PASS" if ok else "FAIL") if m_idx == 0 else ("(pass)" if ok else "(fail)")
        print(
            f"{name:<24} {pre:>8.3f} {after200.mean():>9.3f} "
            f"{f'[{after200.min():.3f}, {after200.max():.3f}]':>14} {after:>9.3f} "
            f"{overall:>8.3f}  {verdict}"
        )
    return ok_all


# ----------------------------------------------------------------------------- latency


def run_latency(n_agents: int = 1000, loops: int = 2000) -> None:
    print(f"\n## Part 3 (info): latency, {n_agents} agents with 50 outcomes each")
    rng = np.random.default_rng(0)
    p = CompletionPredictor()
    ids = [f"agent-{i:04d}" for i in range(n_agents)]
    for a in ids:
        for r in np.exp(rng.normal(0.15, 0.5, 50)):
            p.observe(a, 60.0, 60.0 * float(r))
    t0 = time.perf_counter()
    for i in range(loops):
        p.predict(ids[i % n_agents], 60.0)
    t_pred = (time.perf_counter() - t0) / loops
    p.upper_factors(ids)
    t0 = time.perf_counter()
    for _ in range(loops):
        p.upper_factors(ids)
    t_hit = (time.perf_counter() - t0) / loops
    t0 = time.perf_counter()
    for i in range(loops):
        p.observe(ids[i % n_agents], 60.0, 75.0)
    t_obs = (time.perf_counter() - t0) / loops
    t0 = time.perf_counter()
    for i in range(loops):
        p.observe(ids[i % n_agents], 60.0, 75.0)
        p.upper_factors(ids)
    t_patch = (time.perf_counter() - t0) / loops - t_obs
    t0 = time.perf_counter()
    p._cache = None  # cold rebuild, for comparison only
    p.upper_factors(ids)
    t_cold = time.perf_counter() - t0
    print(f"predict: {t_pred * 1e6:.1f} µs; observe: {t_obs * 1e6:.1f} µs")
    print(
        f"upper_factors({n_agents}): cached {t_hit * 1e6:.1f} µs, after one observe "
        f"{t_patch * 1e6:.1f} µs, cold rebuild {t_cold * 1e6:.0f} µs"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small fast version")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    # the drift scenario trips the predictor's under-coverage warning on purpose
    logging.getLogger("stellar_graph.prediction").setLevel(logging.ERROR)
    if args.quick:
        ok = run_splits(200, [100], args.seed)
        ok &= run_drift(6, 3000, 2000)
        run_latency(200, 500)
    else:
        ok = run_splits(1000, [100, 199, 500], args.seed)
        ok &= run_drift(50, 4000, 2000)
        run_latency()
    print(f"\nOverall: {'PASS' if ok else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
