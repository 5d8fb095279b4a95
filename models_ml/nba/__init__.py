"""Next-best-action propensity model: features in, gated MLflow champion out, batch scores and reasons.

See ``models_ml/README.md`` for the modules and the decision flow.
"""

from models_ml.nba.evaluate import HoldoutEvaluation, evaluate_holdout, popularity_scores, ranking_metrics
from models_ml.nba.features import Encoding, Feature, encode, fit_encoding
from models_ml.nba.train import Split, TrainConfig, TrainedModel, encoding_of, predict, time_split, train_model

__all__ = [
    "Encoding", "Feature", "HoldoutEvaluation", "Split", "TrainConfig", "TrainedModel", "encode", "encoding_of",
    "evaluate_holdout", "fit_encoding", "popularity_scores", "predict", "ranking_metrics", "time_split",
    "train_model",
]
