"""The cycle's decisions: gates that judge a candidate against the champion on holdout
data (``gates``); the controller that drives retraining and rollout builds on them."""
