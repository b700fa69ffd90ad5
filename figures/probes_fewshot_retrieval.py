"""Beyond zero-shot: probes, few-shot, retrieval (notebook 05) and the limitation studies (06).

    probe_bars(tasks)                 # zero-shot vs linear probe per task and model
    probe_scatter(tasks)              # the paper's Fig. 8 style: probe (y) against zero-shot (x), y = x
    lambda_curves(curves)             # validation score over the λ the search visited
    few_shot_curves(few_shot, tasks)  # top-1 against k (log axis), zero-shot as a dashed line
    retrieval_bars(table)             # R@1/5/10 per direction and positives
    rate_bars(rates, x, colour)       # any rate with a 95 % interval, grouped (counting, audits, typographic)
"""
from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from .palette import NEUTRAL, colour, symbol

__all__ = ["probe_bars", "probe_scatter", "lambda_curves", "few_shot_curves", "retrieval_bars", "rate_bars"]


def _error(g: pd.DataFrame, y: str, low: str, high: str) -> dict:
    return dict(type="data", symmetric=False, array=g[high] - g[y], arrayminus=g[y] - g[low])


def probe_bars(tasks: pd.DataFrame) -> go.Figure:
    """tasks: model, task, zero_shot, top1 (probe)."""
    fig = go.Figure()
    for model, g in tasks.groupby("model", sort=False):
        fig.add_bar(x=g["task"], y=g["zero_shot"], name=f"{model} zero-shot", marker_pattern_shape="/",
                    hovertemplate="%{x}: %{y:.1%}<extra>" + model + " zero-shot</extra>")
        fig.add_bar(x=g["task"], y=g["top1"], name=f"{model} linear probe",
                    hovertemplate="%{x}: %{y:.1%}<extra>" + model + " linear probe</extra>")
    fig.update_layout(title="Zero-shot vs linear probe on the same embeddings", barmode="group", height=430,
                      yaxis=dict(tickformat=".0%", range=[0, 1.02], title="top-1 (test)"))
    return fig


def probe_scatter(tasks: pd.DataFrame) -> go.Figure:
    """One point per (model, task): zero-shot top-1 (x) and probe top-1 (y); above y = x the
    embedding holds more than text can read out."""
    fig = go.Figure()
    fig.add_scatter(x=[0, 1], y=[0, 1], mode="lines", line=dict(color=NEUTRAL, dash="dash"), name="y = x")
    for k, (model, g) in enumerate(tasks.groupby("model", sort=False)):
        fig.add_scatter(x=g["zero_shot"], y=g["top1"], mode="markers+text", text=g["task"], textposition="top center",
                        name=model, marker=dict(size=11, color=colour(k), symbol=symbol(k)),
                        hovertemplate="%{text}: zero-shot %{x:.1%}, probe %{y:.1%}<extra>" + model + "</extra>")
    fig.update_layout(title="Linear probe vs zero-shot (paper Fig. 8 style)", height=480, width=560,
                      xaxis=dict(tickformat=".0%", range=[0, 1.05], title="zero-shot top-1"),
                      yaxis=dict(tickformat=".0%", range=[0, 1.05], title="linear-probe top-1"))
    return fig


def lambda_curves(curves: pd.DataFrame) -> go.Figure:
    """curves: model, task, lambda, val_score (the points the search visited)."""
    fig = go.Figure()
    for k, ((model, task), g) in enumerate(curves.groupby(["model", "task"], sort=False)):
        g = g.sort_values("lambda")
        fig.add_scatter(x=g["lambda"], y=g["val_score"], mode="lines+markers", name=f"{model} · {task}",
                        line=dict(color=colour(k)), marker=dict(symbol=symbol(k), color=colour(k)),
                        hovertemplate="λ=%{x:.2g}: %{y:.1%}<extra>" + f"{model} · {task}</extra>")
    fig.update_layout(title="Validation top-1 over the λ the search visited (≤ 15 per task)", height=430,
                      xaxis=dict(type="log", title="λ (C = 1/λ)", exponentformat="power"),
                      yaxis=dict(tickformat=".0%", title="validation top-1"))
    return fig


def few_shot_curves(few_shot: pd.DataFrame, tasks: pd.DataFrame, model: str) -> go.Figure:
    """Mean top-1 over seeds (min-max band as error bars) against k, one line per task; zero-shot dashed."""
    fig = go.Figure()
    shots = few_shot[few_shot["model"] == model]
    for k, (task, g) in enumerate(shots.groupby("task", sort=False)):
        colour_k = colour(k)
        s = g.groupby("k")["top1"].agg(["mean", "min", "max"]).reset_index()
        fig.add_scatter(x=s["k"], y=s["mean"], mode="lines+markers", name=task, line=dict(color=colour_k),
                        marker=dict(symbol=symbol(k), color=colour_k),
                        error_y=dict(type="data", symmetric=False, array=s["max"] - s["mean"],
                                     arrayminus=s["mean"] - s["min"]),
                        hovertemplate="%{x}-shot: %{y:.1%}<extra>" + task + "</extra>")
        zs = tasks[(tasks["model"] == model) & (tasks["task"] == task)]["zero_shot"].iloc[0]
        fig.add_scatter(x=[s["k"].min(), s["k"].max()], y=[zs, zs], mode="lines", showlegend=False,
                        line=dict(color=colour_k, dash="dash"),
                        hovertemplate=f"{task} zero-shot: {zs:.1%}<extra></extra>")
    fig.update_layout(title=f"{model}: few-shot linear probes (dashed: zero-shot)", height=450,
                      xaxis=dict(type="log", title="labelled examples per class (k)", tickvals=[1, 2, 4, 8, 16]),
                      yaxis=dict(tickformat=".0%", range=[0, 1.02], title="top-1 (test)"))
    return fig


def retrieval_bars(table: pd.DataFrame, ks=(1, 5, 10)) -> go.Figure:
    """table: model, direction, positives, R@k."""
    fig = go.Figure()
    for (model, positives), g in table.groupby(["model", "positives"], sort=False):
        for k in ks:
            fig.add_bar(x=g["direction"], y=g[f"R@{k}"], name=f"{model} · {positives} · R@{k}",
                        hovertemplate="%{x}: %{y:.1%}<extra>" + f"{model} {positives} R@{k}</extra>")
    fig.update_layout(title="Retrieval recall@k (exact: the caption's own image; consistent: any image it is true of)",
                      barmode="group", height=450, yaxis=dict(tickformat=".0%", range=[0, 1.02], title="recall"))
    return fig


def rate_bars(rates: pd.DataFrame, x: str, colour: str, y: str = "rate", low: str = "low", high: str = "high",
              title: str = "", yaxis: str = "share") -> go.Figure:
    """Grouped bars of any rate with its 95 % interval: one bar group per value of `x`, one colour
    per value of `colour`."""
    fig = go.Figure()
    for name, g in rates.groupby(colour, sort=False):
        fig.add_bar(x=g[x].astype(str), y=g[y], name=str(name), error_y=_error(g, y, low, high),
                    hovertemplate="%{x}: %{y:.1%}<extra>" + str(name) + "</extra>")
    fig.update_layout(title=title, barmode="group", height=420, yaxis=dict(tickformat=".0%", title=yaxis),
                      xaxis=dict(title=x))
    return fig
