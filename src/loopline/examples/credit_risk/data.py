"""Synthetic loan applications, generated from a seed (no download).

The default probability follows a known model of the applicant's finances with the
shapes real credit data has and a linear model misses: a debt-to-income cliff, the loan's
burden on the income (a ratio of two columns), repeated late payments, risk at both ends
of the age range, self-employed applicants whose risk grows with their debt, and young
businesses. Boosted trees find them; a logistic regression on the raw columns cannot,
so tuning has something to win. A shifted generator (``shift``) produces the kind of
drift a monitor should catch.
"""

from __future__ import annotations

from typing import Any

PURPOSES = ["car", "home_improvement", "debt_consolidation", "education", "business"]
HOMES = ["rent", "mortgage", "own"]
EMPLOYMENT = ["salaried", "self_employed", "unemployed", "retired"]


def generate_applications(
    n_rows: int = 5_000, seed: int = 0, shift: float = 0.0, concept: float = 0.0
) -> Any:
    """A DataFrame of applications with a boolean ``default`` label (about 30% true).

    ``shift`` (in standard deviations) moves income down and debt-to-income up, as in a
    downturn. ``concept`` changes what predicts default (the same applicants, new
    outcomes): any late payment, a low income and youth weigh more, a mortgage protects,
    the debt-to-income cliff matters less.
    """
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    age = rng.integers(21, 75, n_rows)
    income = np.round(np.exp(rng.normal(10.8 - 0.25 * shift, 0.45, n_rows)), 2)
    dti = np.clip(rng.normal(0.32 + 0.06 * shift, 0.12, n_rows), 0.0, 1.2).round(3)
    history = np.clip(age - 18 - rng.integers(0, 10, n_rows), 0, None)
    late = rng.poisson(0.4 + 0.3 * shift, n_rows)
    amount = np.round(rng.gamma(2.0, 6_000, n_rows), -2)
    purpose = rng.choice(PURPOSES, n_rows, p=[0.25, 0.2, 0.3, 0.1, 0.15])
    home = rng.choice(HOMES, n_rows, p=[0.45, 0.4, 0.15])
    employment = rng.choice(EMPLOYMENT, n_rows, p=[0.7, 0.15, 0.05, 0.1])
    burden = amount / income  # the loan in years of income
    logit = (
        -2.3
        + 2.4 * (dti > 0.42)
        + 2.0 * (burden > 0.45)
        + 1.4 * (late >= 2)
        + 1.2 * ((age < 26) | (age > 66))
        + np.where(employment == "self_employed", 8.0 * (dti - 0.32), 0.0)
        + np.where(employment == "unemployed", 1.5, 0.0)
        + np.where((purpose == "business") & (history < 6), 1.8, 0.0)
        - np.where((home == "own") & (dti < 0.3), 1.2, 0.0)
    )
    if concept:
        logit = logit + concept * (
            1.8 * (late >= 1)
            + 1.6 * (income < np.exp(10.45))
            + 1.2 * (age < 32)
            - 1.4 * (home == "mortgage")
            - 1.6 * (dti > 0.42)
            - 0.6
        )
    default = rng.random(n_rows) < 1.0 / (1.0 + np.exp(-logit))
    frame = pd.DataFrame(
        {
            "age": age,
            "income": income,
            "debt_to_income": dti,
            "credit_history_years": history,
            "late_payments": late,
            "loan_amount": amount,
            "purpose": purpose,
            "home_ownership": home,
            "employment": employment,
            "default": default,
        }
    )
    # Real application forms have gaps: some incomes were not declared.
    missing = rng.random(n_rows) < 0.02
    frame.loc[missing, "income"] = np.nan
    return frame
