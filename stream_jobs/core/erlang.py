"""Erlang A: the M/M/n+M queue (Palm 1943; Garnett, Mandelbaum and Reiman 2002), exact.

Calls arrive as a Poisson stream (rate λ), n agents each finish a call at rate μ = 1 / (talk
+ wrap-up), and a waiting caller hangs up at rate θ = 1 / mean patience. Erlang C is the case
θ = 0: nobody hangs up, so an overloaded queue grows for ever and its waits are overstated;
with θ > 0 the queue is always stable and the model says how many give up.

The number of calls in the system (talking + waiting) is a birth-death chain: births λ, deaths
min(j, n)μ + max(j − n, 0)θ. A caller who arrives to find j in the system (PASTA: arrivals see
the chain's distribution) is answered at once if j < n; otherwise the m = j − n callers ahead
must go (each either answered or hanging up) and then an agent must free, m + 1 steps at rates
nμ + iθ (i = m … 0), while the caller's own patience (rate θ) runs. So the chance to be
answered is the product of r_i / (r_i + θ) and the chance to be answered within T is that times
P(Σ Exp(r_i + θ) ≤ T); both are computed for every m at once by uniformization, which is exact
to the truncation (1e-12) and numerically stable, where the closed hypoexponential sum is not.

Measures are per arriving caller, as spec/metrics.md counts them: `service_level` is the
share answered within T, `answer_rate` the share answered. Short abandons and callbacks, which
the agreements leave out of the base, are not in the model (docs/forecasting.md).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

EPSILON = 1e-12  # probability mass left out by truncating the chain or a Poisson sum
CHUNK = 1024  # uniformized steps held at once
DENSE_STATES = 160  # up to this many states a step is a dense product (fewer numpy calls), beyond it tridiagonal
MAX_AGENTS = 500  # agents_needed gives up here (a queue that needs more is a model error)
# Erlang C with λ/(nμ) this close to 1 is λ = nμ up to rounding (65 calls per 900 s of 180 s are
# 13 erlangs, 65/900·180 = 12.999…8): no steady state, rather than 10^17 states.
CRITICAL = 1e-9


@dataclass(frozen=True)
class Load:
    """What the queue is offered. Rates are per second."""

    arrivals_per_second: float  # λ
    handle_seconds: float  # mean talk + wrap-up, 1/μ
    patience_seconds: float  # mean patience, 1/θ; math.inf for nobody hangs up (Erlang C)

    def __post_init__(self) -> None:
        if not (self.arrivals_per_second >= 0 and self.handle_seconds > 0 and self.patience_seconds > 0):
            raise ValueError(f"a load needs λ ≥ 0, handle time > 0 and patience > 0: {self}")

    @property
    def mu(self) -> float:
        return 1.0 / self.handle_seconds

    @property
    def theta(self) -> float:
        return 0.0 if math.isinf(self.patience_seconds) else 1.0 / self.patience_seconds

    @property
    def erlangs(self) -> float:
        """Offered traffic λ/μ."""
        return self.arrivals_per_second * self.handle_seconds


@dataclass(frozen=True)
class Outlook:
    """What a caller can expect: shares of the callers who arrive."""

    service_level: float  # answered within T
    answer_rate: float  # answered at all
    wait_probability: float  # not answered at once
    mean_wait_seconds: float  # mean time in the queue of all callers (answered or not)


def _deaths(load: Load, agents: int, size: int) -> np.ndarray:
    """Death rate of each state j = 0 … size − 1."""
    j = np.arange(size, dtype=float)
    deaths: np.ndarray = np.minimum(j, agents) * load.mu + np.maximum(j - agents, 0.0) * load.theta
    return deaths


def _size(load: Load, agents: int, at_least: int = 0) -> int:
    """States 0 … size − 1 hold all but EPSILON of the mass (stationary, or reached from at_least)."""
    lam, theta = load.arrivals_per_second, load.theta
    if lam == 0:
        return max(agents, at_least) + 2
    if theta > 0:  # past j ≈ n + λ/θ the chain falls back faster than it climbs
        spread = lam / theta
        tail = spread + 12 * math.sqrt(spread + 1) + 30
    else:
        rho = lam / (agents * load.mu) if agents else math.inf
        if rho >= 1 - CRITICAL:
            raise ValueError("Erlang C with λ ≥ nμ has no steady state: give a finite patience")
        tail = math.log(EPSILON) / math.log(rho) + 30 if rho > 0 else 30
    return max(agents, at_least) + math.ceil(tail) + 2


def stationary(load: Load, agents: int) -> np.ndarray:
    """The long-run distribution of the number of calls in the system."""
    size = _size(load, agents)
    deaths = _deaths(load, agents, size)[1:]
    lam = load.arrivals_per_second
    if lam == 0:
        empty = np.zeros(size)
        empty[0] = 1.0
        return empty
    with np.errstate(divide="ignore"):
        steps = np.log(lam) - np.log(deaths)
    logp = np.concatenate(([0.0], np.cumsum(steps)))
    p: np.ndarray = np.exp(logp - logp.max())
    p /= p.sum()
    return p


def _poisson_weights(mean: float) -> np.ndarray:
    """P(N = k), k = 0 … K, for N ~ Poisson(mean), K far enough for all but EPSILON."""
    if mean == 0:
        return np.ones(1)
    last = math.ceil(mean + 10 * math.sqrt(mean) + 20)
    k = np.arange(last + 1, dtype=float)
    logw = -mean + k * math.log(mean) - np.array([math.lgamma(x + 1) for x in k])
    weights: np.ndarray = np.exp(logw)
    return weights


def answer_chances(load: Load, agents: int, threshold_seconds: float, size: int) -> tuple[np.ndarray, np.ndarray]:
    """For an arrival who finds j = 0 … size − 1 in the system: P(answered within T), P(answered)."""
    theta, within, answered = load.theta, np.ones(size), np.ones(size)
    queued = size - agents  # positions m = 0 … queued − 1 (m callers ahead)
    if queued <= 0:
        return within, answered
    if agents == 0:  # nobody to answer
        within[:] = 0.0
        answered[:] = 0.0
        return within, answered
    rates = agents * load.mu + np.arange(queued) * theta  # the step from i callers ahead
    answered[agents:] = np.cumprod(rates / (rates + theta))
    # Uniformization: a step from i ahead goes on with prob rates[i]/Λ, ends (hung up) with θ/Λ.
    # g[m] = P(answered within k uniformized steps | m ahead), updated for k = 1, 2, ….
    big = float(rates[-1] + theta)
    go, stay = rates / big, 1.0 - (rates + theta) / big
    g, total = np.zeros(queued), np.zeros(queued)
    for w in _poisson_weights(big * threshold_seconds):
        total += w * g
        g = go * np.concatenate(([1.0], g[:-1])) + stay * g
    within[agents:] = total
    return within, answered


def _mean_waits(load: Load, agents: int, size: int) -> np.ndarray:
    """For an arrival who finds j = 0 … size − 1 in the system: E[time in queue], answered or not.
    From m ahead each of the m + 1 steps takes Exp(r_i + θ), r_i = nμ + iθ, and ends the wait (the
    caller hangs up) with chance θ/(r_i + θ): W_m = 1/(r_m + θ) + r_m/(r_m + θ)·W_{m−1}, W_{−1} = 0."""
    theta, waits, wait = load.theta, np.zeros(size), 0.0
    for j in range(agents, size):
        rate = agents * load.mu + (j - agents) * theta
        wait = 1.0 / (rate + theta) + rate / (rate + theta) * wait
        waits[j] = wait
    return waits


def _outlook(load: Load, agents: int, p: np.ndarray, threshold_seconds: float) -> Outlook:
    within, answered = answer_chances(load, agents, threshold_seconds, len(p))
    # Per arrival (PASTA: they find p), so it holds over a horizon too; in the long run it is
    # Little's mean queue length / λ, which a horizon starting from a backlog is not.
    waits = _mean_waits(load, agents, len(p))
    return Outlook(
        service_level=float(p @ within),
        answer_rate=float(p @ answered),
        wait_probability=float(p[agents:].sum()),
        mean_wait_seconds=float(p @ waits),
    )


def steady(load: Load, agents: int, threshold_seconds: float) -> Outlook:
    """The long-run outlook with `agents` agents."""
    return _outlook(load, agents, stationary(load, agents), threshold_seconds)


def transient(load: Load, agents: int, threshold_seconds: float, *, in_system: int, horizon_seconds: float) -> Outlook:
    """The outlook of the callers arriving over the next `horizon_seconds`, starting from
    `in_system` calls (talking + waiting) now: the chain's distribution averaged over the horizon,
    which by PASTA is what those arrivals find. A backlog now weighs on the first minutes."""
    return staffed(load, [agents], threshold_seconds, in_system=in_system, segment_seconds=horizon_seconds)


def staffed(
    load: Load, agents: Sequence[int], threshold_seconds: float, *, in_system: int, segment_seconds: float
) -> Outlook:
    """As `transient`, over consecutive segments of `segment_seconds` with `agents[k]` agents in
    segment k (breaks starting, agents coming back): the chain runs on from one segment to the
    next; a caller is judged with the agents of the segment it arrives in. Arrivals are even over
    the segments, so the outlook is the segments' mean."""
    size = max(_size(load, n, at_least=in_system) for n in agents)
    p = np.zeros(size)
    p[min(in_system, size - 1)] = 1.0
    parts = []
    for n in agents:
        p, average = _evolve(load, n, size, p, segment_seconds)
        parts.append(_outlook(load, n, average, threshold_seconds))
    return Outlook(*(sum(getattr(o, f) for o in parts) / len(parts) for f in Outlook.__dataclass_fields__))


def _evolve(load: Load, agents: int, size: int, p: np.ndarray, seconds: float) -> tuple[np.ndarray, np.ndarray]:
    """The chain's distribution `seconds` after p, and its average over them."""
    lam, deaths = load.arrivals_per_second, _deaths(load, agents, size)
    births = np.full(size, lam)
    births[-1] = 0.0  # the truncation: mass beyond is below EPSILON
    big = float((births + deaths).max())
    if big == 0 or seconds <= 0:
        return p, p.copy()
    up, down = births / big, deaths / big
    stay = 1.0 - up - down
    if size <= DENSE_STATES:  # one uniformized step as one product (row vectors: p → p @ matrix)
        matrix = np.diag(stay) + np.diag(up[:-1], 1) + np.diag(down[1:], -1)

        def step(p: np.ndarray) -> np.ndarray:
            moved: np.ndarray = p @ matrix
            return moved

    else:  # a long chain: the tridiagonal step in O(states), not O(states²)

        def step(p: np.ndarray) -> np.ndarray:
            moved: np.ndarray = stay * p
            moved[1:] += up[:-1] * p[:-1]
            moved[:-1] += down[1:] * p[1:]
            return moved

    # p(t) = Σ_k p_k · P(N(Λt) = k), and (1/H)∫₀ᴴ p(t) dt = Σ_k p_k · P(N > k) / (ΛH), N ~ Poisson(ΛH):
    # p_k the uniformized chain's steps.
    weights = _poisson_weights(big * seconds)
    # P(N > k), summed from the far end: 1 − P(N ≤ k) is 0 in floating point when ΛH < 1e-16.
    beyond = np.append(np.cumsum(weights[::-1])[::-1][1:], 0.0)
    end, average = np.zeros(size), np.zeros(size)
    for first in range(0, len(weights), CHUNK):  # the steps in blocks: memory stays CHUNK × size
        count = min(CHUNK, len(weights) - first)
        steps = np.empty((count, size))
        steps[0] = p
        for k in range(1, count):
            steps[k] = step(steps[k - 1])
        end += weights[first : first + count] @ steps
        average += beyond[first : first + count] @ steps
        p = step(steps[-1])
    return end / end.sum(), average / average.sum()


def agents_needed(
    load: Load, threshold_seconds: float, service_level_target: float, answer_rate_target: float = 0.0
) -> int:
    """The fewest agents whose long-run service level and answer rate meet the targets (0 for
    no calls). The search starts at the offered load and goes down or up: both measures grow with
    the agents."""
    if load.arrivals_per_second == 0:
        return 0
    # Erlang C needs n > λ/μ to be stable (up to rounding: CRITICAL); with abandonment any n is.
    lowest = 1
    if load.theta == 0:
        lowest = math.floor(load.erlangs) + 1
        while load.arrivals_per_second / (lowest * load.mu) >= 1 - CRITICAL:
            lowest += 1

    def meets(n: int) -> bool:
        o = steady(load, n, threshold_seconds)
        return o.service_level >= service_level_target and o.answer_rate >= answer_rate_target

    n = max(lowest, math.ceil(load.erlangs))
    if meets(n):
        while n > lowest and meets(n - 1):
            n -= 1
        return n
    while not meets(n):
        n += 1
        if n > MAX_AGENTS:
            raise ValueError(f"more than {MAX_AGENTS} agents needed for {load}")
    return n
