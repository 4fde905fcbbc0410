"""Analyses that drive solvers, scores or integrators: convergence studies, likelihoods, score-error profiles.

This layer sits above solvers and metrics. A metric is a plain function of samples and a reference and never runs a
solver; an analysis runs solvers (or its own integrator) and may use metrics to judge what they produce.
"""
