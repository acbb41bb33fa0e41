"""The embedded shop: a deterministic simulated catalog, shoppers and click model with exact truth.

``World.create(WorldConfig(...))`` makes a shop; ``world.generate_events()`` logs its history;
``world.click_probs`` / ``step`` / ``oracle_slates`` / ``regret`` make it an online environment whose
every probability is known, so any policy's regret is exact. ``serendip simulate`` writes it to disk.
"""

from recsys.simulator.cli import SimulateConfig, simulate
from recsys.simulator.config import WorldConfig
from recsys.simulator.vocabulary import DEFAULT_VOCABULARY, Vocabulary
from recsys.simulator.world import StepResult, World

__all__ = ["DEFAULT_VOCABULARY", "SimulateConfig", "StepResult", "Vocabulary", "World", "WorldConfig", "simulate"]
