"""Training-free student search: spaces, zero-cost proxies (DisWOT and baselines), aging evolution."""

from kdcompress.records import Scored
from kdcompress.search.evolution import search
from kdcompress.search.proxies import PROXIES
from kdcompress.search.space import SPACES, Candidate

__all__ = ["PROXIES", "SPACES", "Candidate", "Scored", "search"]
