"""Ray Tune: hyperparameter sweeps of the training loop and exploration-rate sweeps of the policies.

Entry points (each a typed config and a function, for ``serendip tune ...`` and ``python -m tuning``):

- ``tuning.hparams``: ``HparamSweepConfig`` / ``tune_hparams`` (``run_hparam_sweep`` returns the outcome);
- ``tuning.exploration``: ``ExplorationSweepConfig`` / ``tune_exploration`` (``run_exploration_sweep``).

Both write ``report.md`` with ranked trials, failed trials with their errors, and plots. The
exploration sweep scores ``recsys.policies`` with ``recsys.replay.run_replay`` (simulator) or
``recsys.ope`` (logged impressions); nothing here re-implements a policy, a replay or an estimator.
"""
