#!/usr/bin/env python3
"""Reference values for the paired-totals statistics of packages/stats.

Run:  /usr/bin/python3 packages/stats/references/paired.py
(Debian's python3-numpy 1.24, python3-scipy 1.10, python3-statsmodels 0.13.)

Every number is computed from simulated unit-level data, independently of the
totals-based formulas under test; the script also prints the per-arm
sufficient statistics (n, Σy, Σy², Σx, Σx², Σxy) that the TypeScript tests
feed to the functions. Printed with repr(), so the doubles are exact.

1. CUPED (Deng, Xu, Kohavi & Walker 2013) with three arms: θ and the adjusted
   effects are the OLS coefficients of y ~ 1 + arm indicators + x
   (statsmodels OLS: the common within-arm slope, Frisch–Waugh); the variance
   of each adjusted effect is Σ over the two arms of the sample variance of
   the unit residuals y − θx over n, computed from the units (numpy, ddof=1).
   A two-arm fit (control and b only) gives the θ of a two-arm experiment.
2. Ratio metrics (Deng, Knoblich & Lu 2018, KDD, §3): R = Σnum/Σden and
   Var(R) by linearisation, the sample variance of the per-unit
   num − R·den over n·d̄², which equals their (s²num − 2R·s_num,den + R²s²den)/(n·d̄²).
3. The mSPRT on an estimate (Johari, Pekelis & Walsh 2017): Λ by numerical
   integration of the Gaussian likelihood ratio over the N(0, τ²) mixture
   (scipy.integrate.quad), the always-valid p = min(1, 1/Λ), and the
   confidence-sequence half-width as the root of Λ(θ₀) = 1/α (scipy brentq),
   not the closed forms of the TypeScript.
4. Holm (1979): statsmodels.stats.multitest.multipletests(method="holm").
"""
import math

import numpy as np
import statsmodels.api as sm
from scipy import integrate, optimize, stats
from statsmodels.stats.multitest import multipletests

rng = np.random.default_rng(20261207)


def totals(y, x):
    return {
        "units": int(len(y)),
        "sum": float(np.sum(y)),
        "sumSq": float(np.sum(y * y)),
        "pairSum": float(np.sum(x)),
        "pairSumSq": float(np.sum(x * x)),
        "crossSum": float(np.sum(x * y)),
    }


def show(name, value):
    print(f"{name} = {value!r}")


def show_totals(name, t):
    body = ", ".join(f"{k}: {v!r}" for k, v in t.items())
    print(f"{name} = {{ {body} }}")


# ---------------------------------------------------------------- 1. CUPED
print("# CUPED: y = 2 + 0.8·x + e, x ~ N(10, 2²), e ~ N(0, 1.6²) (ρ ≈ 0.7); effect +0.3 in b, 0 in c")
arms = {"control": (600, 0.0), "b": (620, 0.3), "c": (580, 0.0)}
data = {}
for name, (n, effect) in arms.items():
    x = rng.normal(10, 2, n)
    y = 2 + 0.8 * x + rng.normal(0, 1.6, n) + effect
    data[name] = (y, x)
    show_totals(f"cuped.{name}", totals(y, x))

def ols_fit(names):
    y = np.concatenate([data[a][0] for a in names])
    x = np.concatenate([data[a][1] for a in names])
    cols = [np.ones_like(y)]
    for a in names[1:]:
        cols.append(np.concatenate([np.full(len(data[b][0]), 1.0 if b == a else 0.0) for b in names]))
    cols.append(x)
    fit = sm.OLS(y, np.column_stack(cols)).fit()
    theta = fit.params[-1]
    effects = {a: fit.params[1 + i] for i, a in enumerate(names[1:])}
    return theta, effects

def adjusted_variance(arm, theta):
    y, x = data[arm]
    return np.var(y - theta * x, ddof=1) / len(y)

for label, names in (("three arms", ["control", "b", "c"]), ("two arms (control, b)", ["control", "b"])):
    theta, effects = ols_fit(names)
    print(f"# {label}")
    key = "three" if len(names) == 3 else "two"
    show(f"cuped.{key}.theta", float(theta))
    for a, eff in effects.items():
        v = adjusted_variance("control", theta) + adjusted_variance(a, theta)
        unadjusted = sum(np.var(data[b][0], ddof=1) / len(data[b][0]) for b in ("control", a))
        yc = np.mean(data["control"][0])
        yt = np.mean(data[a][0])
        # Delta method for (adjusted effect)/ȳc with the adjusted per-arm variances.
        rel = adjusted_variance(a, theta) / yc**2 + yt**2 / yc**4 * adjusted_variance("control", theta)
        show(f"cuped.{key}.{a}.effect", float(eff))
        show(f"cuped.{key}.{a}.variance", float(v))
        show(f"cuped.{key}.{a}.unadjustedVariance", float(unadjusted))
        show(f"cuped.{key}.{a}.varianceReduction", float(1 - v / unadjusted))
        show(f"cuped.{key}.{a}.controlLevel", float(yc))
        show(f"cuped.{key}.{a}.relativeVariance", float(rel))

# ---------------------------------------------------------------- 2. Ratio
print("# Ratio: den = 1 + Poisson(3) sessions per user, num = revenue, Gamma(2, 1.2·den) (+25 % in treatment)")
ratio = {}
for name, (n, lift) in {"control": (400, 1.0), "treatment": (410, 1.25)}.items():
    den = 1.0 + rng.poisson(3, n)
    num = rng.gamma(2.0, 1.2 * den * lift)
    ratio[name] = (num, den)
    show_totals(f"ratio.{name}", totals(num, den))
    r = np.sum(num) / np.sum(den)
    dbar = np.mean(den)
    v = np.var(num - r * den, ddof=1) / (n * dbar**2)
    c = np.cov(num, den, ddof=1)
    v_dkl = (c[0, 0] - 2 * r * c[0, 1] + r * r * c[1, 1]) / (n * dbar**2)
    assert abs(v - v_dkl) <= 1e-12 * v
    show(f"ratio.{name}.ratio", float(r))
    show(f"ratio.{name}.variance", float(v))
rc = np.sum(ratio["control"][0]) / np.sum(ratio["control"][1])
rt = np.sum(ratio["treatment"][0]) / np.sum(ratio["treatment"][1])

# ---------------------------------------------------------------- 3. mSPRT on an estimate
def msprt(effect, s2, tau2, alpha):
    """Λ = ∫ N(Δ; θ, s²) N(θ; 0, τ²) dθ / N(Δ; 0, s²) by quadrature, in logs around the peak."""
    s = math.sqrt(s2)
    tau = math.sqrt(tau2)
    def log_lambda(theta0):
        d = effect - theta0
        # Integrate exp(log N(d; θ, s²) + log N(θ; 0, τ²) − log N(d; 0, s²) − c) over θ, c the log peak.
        post_var = 1 / (1 / s2 + 1 / tau2)
        post_mean = post_var * d / s2
        f = lambda t: stats.norm.logpdf(d, t, s) + stats.norm.logpdf(t, 0, tau) - stats.norm.logpdf(d, 0, s)
        c = f(post_mean)
        sd = math.sqrt(post_var)
        val, _ = integrate.quad(lambda t: math.exp(f(t) - c), post_mean - 40 * sd, post_mean + 40 * sd,
                                epsabs=0, epsrel=1e-13, limit=200)
        return c + math.log(val)
    ll = log_lambda(0.0)
    p = min(1.0, math.exp(-ll))
    g = lambda t0: log_lambda(t0) - math.log(1 / alpha)
    span = 50 * math.sqrt(s2 + tau2)
    hi = optimize.brentq(g, effect, effect + span, xtol=1e-15, rtol=1e-14)
    return ll, p, hi - effect

tau2 = 0.01
alpha = 0.05
theta3, eff3 = ols_fit(["control", "b", "c"])
print(f"# mSPRT at one look, τ² = {tau2}, α = {alpha}; at α/2 for the three-arm CIs (k = 2 treatments)")
for a in ("b", "c"):
    v = adjusted_variance("control", theta3) + adjusted_variance(a, theta3)
    for lvl, tag in ((alpha, "alpha"), (alpha / 2, "alphaOverK")):
        ll, p, half = msprt(float(eff3[a]), float(v), tau2, lvl)
        if tag == "alpha":
            show(f"msprt.cuped.{a}.logLambda", ll)
            show(f"msprt.cuped.{a}.pValue", p)
        show(f"msprt.cuped.{a}.halfWidth.{tag}", half)
vr = float(np.var(ratio["control"][0] - rc * ratio["control"][1], ddof=1) / (400 * np.mean(ratio["control"][1]) ** 2)
           + np.var(ratio["treatment"][0] - rt * ratio["treatment"][1], ddof=1) / (410 * np.mean(ratio["treatment"][1]) ** 2))
ll, p, half = msprt(float(rt - rc), vr, 0.05, alpha)
show("msprt.ratio.tau2", 0.05)
show("msprt.ratio.logLambda", ll)
show("msprt.ratio.pValue", p)
show("msprt.ratio.halfWidth", half)

# ---------------------------------------------------------------- 4. Holm
print("# Holm, statsmodels multipletests(method='holm')")
for ps in ([0.012, 0.04, 0.3], [0.001, 0.02, 0.019, 0.5], [0.2, 0.01]):
    adj = multipletests(ps, method="holm")[1]
    print(f"holm {ps!r} -> {[float(a) for a in adj]!r}")
